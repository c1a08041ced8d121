import CLibXML2
import Foundation

/// Validates an XML document against an XML Schema (XSD) with libxml2. Used by the tests to
/// check the JUnit report against the schema CI systems follow and against our own, and
/// usable by a `--check` flag.
public enum XMLSchemaValidator {
    /// The problems found, one line each (`line N: message`); empty when the document is valid.
    /// Throws when the schema itself cannot be read or parsed (that is our problem, not the
    /// document's).
    public static func validate(xml: String, schemaFile: URL) throws -> [String] {
        guard FileManager.default.isReadableFile(atPath: schemaFile.path) else {
            throw ReportError("cannot read the XML schema \(schemaFile.path)")
        }
        guard let parserContext = xmlSchemaNewParserCtxt(schemaFile.path) else {
            throw ReportError("cannot open the XML schema \(schemaFile.path)")
        }
        return try validate(xml: xml, parserContext: parserContext, schemaName: schemaFile.path)
    }

    /// Same as `validate(xml:schemaFile:)` with the schema given as text (it may not include or
    /// import other files by relative path).
    public static func validate(xml: String, schemaText: String) throws -> [String] {
        let bytes = Array(schemaText.utf8)
        let parserContext = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                xmlSchemaNewMemParserCtxt($0, Int32(buffer.count))
            }
        }
        guard let parserContext else { throw ReportError("cannot read the XML schema text") }
        return try validate(xml: xml, parserContext: parserContext, schemaName: "the XML schema text")
    }

    private static func validate(xml: String, parserContext: xmlSchemaParserCtxtPtr, schemaName: String) throws -> [String] {
        xmlInitParser()
        defer { xmlSchemaFreeParserCtxt(parserContext) }
        let schemaProblems = ErrorCollector(), documentProblems = ErrorCollector()
        // libxml2 holds unretained pointers to the collectors until the contexts are freed.
        return try withExtendedLifetime((schemaProblems, documentProblems)) {
            // Errors libxml2 raises outside the contexts (reading the schema text itself) go to
            // this thread's handler instead of stderr.
            xmlSetStructuredErrorFunc(schemaProblems.context, ErrorCollector.handler)
            defer { xmlSetStructuredErrorFunc(nil, nil) }
            return try validate(xml: xml, parserContext: parserContext, schemaName: schemaName,
                         schemaProblems: schemaProblems, documentProblems: documentProblems)
        }
    }

    private static func validate(xml: String, parserContext: xmlSchemaParserCtxtPtr, schemaName: String,
                                 schemaProblems: ErrorCollector, documentProblems: ErrorCollector) throws -> [String] {
        xmlSchemaSetParserStructuredErrors(parserContext, ErrorCollector.handler, schemaProblems.context)
        guard let schema = xmlSchemaParse(parserContext) else {
            throw ReportError("invalid XML schema \(schemaName): " + schemaProblems.messages.joined(separator: "; "))
        }
        defer { xmlSchemaFree(schema) }

        guard let document = parse(xml, collector: documentProblems) else {
            return documentProblems.messages.isEmpty ? ["the document is not well-formed XML"] : documentProblems.messages
        }
        defer { xmlFreeDoc(document) }

        guard let validContext = xmlSchemaNewValidCtxt(schema) else { throw ReportError("libxml2: out of memory") }
        defer { xmlSchemaFreeValidCtxt(validContext) }
        xmlSchemaSetValidStructuredErrors(validContext, ErrorCollector.handler, documentProblems.context)
        // 0 = valid, > 0 = invalid (a libxml2 error code, not a count), -1 = internal error.
        let code = xmlSchemaValidateDoc(validContext, document)
        if code == 0 { return [] }
        if documentProblems.messages.isEmpty {
            return [code < 0 ? "libxml2 could not validate the document" : "invalid (libxml2 error \(code))"]
        }
        return documentProblems.messages
    }

    /// Parses without network access and without expanding external entities.
    private static func parse(_ xml: String, collector: ErrorCollector) -> xmlDocPtr? {
        guard let parserContext = xmlNewParserCtxt() else { return nil }
        defer { xmlFreeParserCtxt(parserContext) }
        let bytes = Array(xml.utf8)
        let document = bytes.withUnsafeBufferPointer { buffer -> xmlDocPtr? in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                xmlCtxtReadMemory(parserContext, $0, Int32(buffer.count), "report.xml", "UTF-8",
                                  Int32(XML_PARSE_NONET.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue))
            }
        }
        if document == nil || parserContext.pointee.wellFormed == 0 {
            if let error = xmlCtxtGetLastError(parserContext) {
                collector.add(error)
            }
            if let document { xmlFreeDoc(document) }
            return nil
        }
        return document
    }
}

/// Collects libxml2's structured errors (instead of letting them go to stderr).
private final class ErrorCollector {
    var messages: [String] = []
    var context: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    func add(_ error: UnsafePointer<xmlError>) {
        let text = error.pointee.message.map { String(cString: $0) }?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown error"
        messages.append(error.pointee.line > 0 ? "line \(error.pointee.line): \(text)" : text)
    }

    static let handler: xmlStructuredErrorFunc = { context, error in
        guard let context, let error else { return }
        Unmanaged<ErrorCollector>.fromOpaque(context).takeUnretainedValue().add(UnsafePointer(error))
    }
}
