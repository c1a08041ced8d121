import CLibXML2
import Foundation

/// A thin wrapper over libxml2's `xmlTextWriter` writing to memory. libxml2 escapes `& < > "`
/// (and newlines in attributes); characters XML 1.0 forbids are replaced here first.
final class XMLWriter {
    private let buffer: xmlBufferPtr
    private let writer: xmlTextWriterPtr

    init(indent: Bool = true) throws {
        xmlInitParser()
        guard let buffer = xmlBufferCreate() else { throw ReportError("libxml2: out of memory") }
        guard let writer = xmlNewTextWriterMemory(buffer, 0) else {
            xmlBufferFree(buffer)
            throw ReportError("libxml2: cannot create an XML writer")
        }
        self.buffer = buffer
        self.writer = writer
        if indent {
            xmlTextWriterSetIndent(writer, 1)
            try check(withXMLString("  ") { xmlTextWriterSetIndentString(writer, $0) }, "indent")
        }
    }

    deinit {
        xmlFreeTextWriter(writer)
        xmlBufferFree(buffer)
    }

    func startDocument() throws {
        try check(xmlTextWriterStartDocument(writer, "1.0", "UTF-8", nil), "start document")
    }

    func comment(_ text: String) throws {
        // "--" is not allowed inside an XML comment.
        let safe = XMLWriter.legal(text).replacingOccurrences(of: "--", with: "- -")
        try check(withXMLString(safe) { xmlTextWriterWriteComment(writer, $0) }, "comment")
    }

    func start(_ element: String) throws {
        try check(withXMLString(element) { xmlTextWriterStartElement(writer, $0) }, "<\(element)>")
    }

    func attribute(_ name: String, _ value: String) throws {
        let legal = XMLWriter.legal(value)
        try check(withXMLString(name) { n in withXMLString(legal) { v in xmlTextWriterWriteAttribute(writer, n, v) } },
                  "attribute \(name)")
    }

    func text(_ value: String) throws {
        try check(withXMLString(XMLWriter.legal(value)) { xmlTextWriterWriteString(writer, $0) }, "text")
    }

    func end() throws {
        try check(xmlTextWriterEndElement(writer), "end element")
    }

    /// `<name attr…>text</name>` in one call.
    func element(_ name: String, _ attributes: KeyValuePairs<String, String> = [:], text: String? = nil) throws {
        try start(name)
        for (key, value) in attributes { try attribute(key, value) }
        if let text { try self.text(text) }
        try end()
    }

    /// Ends the document and returns it.
    func finish() throws -> String {
        try check(xmlTextWriterEndDocument(writer), "end document")
        try check(xmlTextWriterFlush(writer), "flush")
        guard let content = xmlBufferContent(buffer) else { return "" }
        return String(cString: UnsafeRawPointer(content).assumingMemoryBound(to: CChar.self))
    }

    private func check(_ code: Int32, _ what: String) throws {
        if code < 0 { throw ReportError("libxml2 could not write the XML (\(what))") }
    }

    private func withXMLString<R>(_ string: String, _ body: (UnsafePointer<xmlChar>) -> R) -> R {
        string.withCString { $0.withMemoryRebound(to: xmlChar.self, capacity: string.utf8.count + 1, body) }
    }

    /// Replaces what XML 1.0 does not allow (control characters other than tab, LF and CR;
    /// U+FFFE, U+FFFF; NUL, which would also cut the C string) by U+FFFD.
    static func legal(_ text: String) -> String {
        func allowed(_ scalar: Unicode.Scalar) -> Bool {
            switch scalar.value {
            case 0x9, 0xA, 0xD, 0x20...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF: true
            default: false
            }
        }
        guard !text.unicodeScalars.allSatisfy(allowed) else { return text }
        var scalars = String.UnicodeScalarView()
        for scalar in text.unicodeScalars { scalars.append(allowed(scalar) ? scalar : "\u{FFFD}") }
        return String(scalars)
    }
}
