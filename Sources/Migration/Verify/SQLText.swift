import Foundation

/// Deparsed SQL (view definitions, expressions, function bodies) compared across major versions.
///
/// The catalogs print a definition through the server's own deparser (ruleutils.c), and that
/// changes between majors: PostgreSQL 16 and later print the columns of a single-relation query
/// without their table prefix (`SELECT id FROM t` where 15 printed `SELECT t.id FROM t`), and any
/// major may lay the text out differently. When the two servers' majors differ and the raw texts
/// differ, the verifier compares these normal forms instead; the view dependency check
/// (`verify.view-dependencies`) still names every user object a view reads, version-independently.
enum SQLText {
    enum TokenKind: Equatable { case word, quotedIdentifier, string, number, symbol }
    struct Token: Equatable { let kind: TokenKind; let text: String }

    /// Splits SQL into tokens: words (lower-cased), "quoted identifiers", 'strings' (also E'…'
    /// and $tag$…$tag$ bodies, kept whole), numbers and symbols; whitespace and comments dropped.
    static func tokens(_ sql: String) -> [Token] {
        let chars = Array(sql.unicodeScalars)
        var out: [Token] = []
        var i = 0
        func isWordStart(_ c: Unicode.Scalar) -> Bool { c == "_" || c.properties.isAlphabetic || c.value > 127 }
        func isWord(_ c: Unicode.Scalar) -> Bool { isWordStart(c) || ("0"..."9").contains(c) || c == "$" }
        func text(_ from: Int, _ to: Int) -> String { String(String.UnicodeScalarView(chars[from..<to])) }
        while i < chars.count {
            let c = chars[i]
            if c.properties.isWhitespace { i += 1; continue }
            if c == "-", i + 1 < chars.count, chars[i + 1] == "-" {  // -- comment to end of line
                while i < chars.count, chars[i] != "\n" { i += 1 }
                continue
            }
            if c == "/", i + 1 < chars.count, chars[i + 1] == "*" {  // /* comment */, nested as in PostgreSQL
                var depth = 0
                while i < chars.count {
                    if chars[i] == "/", i + 1 < chars.count, chars[i + 1] == "*" { depth += 1; i += 2; continue }
                    if chars[i] == "*", i + 1 < chars.count, chars[i + 1] == "/" { depth -= 1; i += 2; if depth == 0 { break }; continue }
                    i += 1
                }
                continue
            }
            if c == "'" || ((c == "E" || c == "e") && i + 1 < chars.count && chars[i + 1] == "'") {
                let start = i
                let escapes = c != "'"
                i += escapes ? 2 : 1
                while i < chars.count {
                    if escapes && chars[i] == "\\" { i += 2; continue }
                    if chars[i] == "'" {
                        if i + 1 < chars.count, chars[i + 1] == "'" { i += 2; continue }
                        i += 1; break
                    }
                    i += 1
                }
                out.append(Token(kind: .string, text: text(start, min(i, chars.count))))
                continue
            }
            if c == "\"" {
                let start = i
                i += 1
                while i < chars.count {
                    if chars[i] == "\"" {
                        if i + 1 < chars.count, chars[i + 1] == "\"" { i += 2; continue }
                        i += 1; break
                    }
                    i += 1
                }
                out.append(Token(kind: .quotedIdentifier, text: text(start, min(i, chars.count))))
                continue
            }
            if c == "$" {  // $tag$ … $tag$ (a dollar-quoted string); a lone $1 is a parameter
                var j = i + 1
                let parameter = j < chars.count && ("0"..."9").contains(chars[j])
                while !parameter, j < chars.count, chars[j] != "$", isWord(chars[j]) { j += 1 }
                if !parameter, j < chars.count, chars[j] == "$" {
                    let tag = text(i, j + 1)
                    let tagScalars = Array(tag.unicodeScalars)
                    var k = j + 1
                    var end: Int?
                    while k + tagScalars.count <= chars.count {
                        if chars[k] == "$", Array(chars[k..<(k + tagScalars.count)]) == tagScalars { end = k + tagScalars.count; break }
                        k += 1
                    }
                    let stop = end ?? chars.count
                    out.append(Token(kind: .string, text: text(i, stop)))
                    i = stop
                    continue
                }
            }
            if ("0"..."9").contains(c) {
                let start = i
                while i < chars.count, ("0"..."9").contains(chars[i]) || chars[i] == "." || chars[i] == "e" || chars[i] == "E" { i += 1 }
                out.append(Token(kind: .number, text: text(start, i)))
                continue
            }
            if isWordStart(c) {
                let start = i
                while i < chars.count, isWord(chars[i]) { i += 1 }
                out.append(Token(kind: .word, text: text(start, i).lowercased()))
                continue
            }
            if c == ":", i + 1 < chars.count, chars[i + 1] == ":" { out.append(Token(kind: .symbol, text: "::")); i += 2; continue }
            if "+-*/<>=~!@#%^&|`?".unicodeScalars.contains(c) {
                let start = i
                while i < chars.count, "+-*/<>=~!@#%^&|`?".unicodeScalars.contains(chars[i]) { i += 1 }
                out.append(Token(kind: .symbol, text: text(start, i)))
                continue
            }
            out.append(Token(kind: .symbol, text: String(c)))
            i += 1
        }
        return out
    }

    /// Words after which a qualified name is a relation, not a column: kept qualified.
    static let relationContext: Set<String> = ["from", "join", "only", "table", "into", "update", "references", "on"]

    /// The normal form: tokens separated by single spaces, with the qualifier of every
    /// qualified column reference (`t.col`, `x."Col"`) removed — PostgreSQL 16+ leaves it out
    /// where 15 printed it. Qualified names followed by `(` (functions) and relation names after
    /// FROM, JOIN and the like keep their qualifiers.
    static func normalised(_ sql: String) -> String {
        let input = tokens(sql)
        var out: [Token] = []
        var i = 0
        func isName(_ t: Token) -> Bool { t.kind == .word || t.kind == .quotedIdentifier }
        /// True when `out` ends with `UPDATE <name>[.<name>]…` or `DELETE FROM <name>…`
        /// (PostgreSQL 18 prints `UPDATE t alias` where 15 printed `UPDATE t AS alias`).
        func afterUpdateTarget() -> Bool {
            var j = out.count - 1
            guard j >= 0, isName(out[j]) else { return false }
            while j >= 2, out[j - 1].text == ".", isName(out[j - 2]) { j -= 2 }
            guard j >= 1, out[j - 1].kind == .word else { return false }
            let before = out[j - 1].text.lowercased()
            return before == "update" || (before == "from" && j >= 2 && out[j - 2].text.lowercased() == "delete")
        }
        while i < input.count {
            let t = input[i]
            if t.kind == .word, t.text.lowercased() == "as", afterUpdateTarget() { i += 1; continue }
            if isName(t), i + 2 < input.count, input[i + 1].text == ".", isName(input[i + 2]) || input[i + 2].text == "*" {
                // Find the end of the dotted name a.b.c and what follows it.
                var end = i + 2
                while end + 2 < input.count, input[end + 1].text == ".", isName(input[end + 2]) { end += 2 }
                let follower = end + 1 < input.count ? input[end + 1].text : ""
                let previous = out.last.map { $0.kind == .word ? $0.text : "" } ?? ""
                if follower != "(" && !relationContext.contains(previous) && input[i].kind != .string {
                    out.append(input[end])
                    i = end + 1
                    continue
                }
                out.append(contentsOf: input[i...end])
                i = end + 1
                continue
            }
            out.append(t)
            i += 1
        }
        return out.map(\.text).joined(separator: " ")
    }

    /// `"json"` → `json`: double quotes around a name that needs none but for the server's
    /// keyword list (lower-case letters, digits, `_`, `$`). Quoted names with anything else
    /// keep their quotes.
    static func unquotingPlainIdentifiers(_ text: String) -> String {
        guard text.contains("\"") else { return text }
        return text.replacingOccurrences(of: #""([a-z_][a-z0-9_$]*)""#, with: "$1", options: .regularExpression)
    }

    /// Whether two deparsed texts are the same definition: equal, or (across majors) equal
    /// normal forms.
    static func sameDefinition(_ source: String, _ target: String, acrossMajors: Bool) -> Bool {
        if source == target { return true }
        guard acrossMajors else { return false }
        return normalised(source) == normalised(target)
    }
}
