import Foundation

/// Splits a psql script (what pg_restore writes with `-f`) into its top-level pieces the way
/// psql's own lexer does: statements end at a `;` outside quotes, dollar quotes, comments,
/// parentheses and `BEGIN ATOMIC … END` bodies; a `\` where a statement would start is a
/// meta-command up to the end of its line; `--` and `/* */` comments between statements are
/// pieces of their own. Statement text is kept byte for byte.
struct SQLScanner {
    enum Piece: Equatable {
        case statement(String)
        case comment(String)
        case metaCommand(String)
    }

    static func pieces(_ script: String) -> [Piece] {
        let bytes = Array(script.utf8)
        var pieces: [Piece] = []
        var i = 0
        let n = bytes.count
        func text(_ from: Int, _ to: Int) -> String { String(decoding: bytes[from..<to], as: UTF8.self) }
        func isIdentByte(_ b: UInt8) -> Bool {
            (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x5F || b >= 0x80 || b == 0x24
        }
        func isIdentStart(_ b: UInt8) -> Bool {
            (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b >= 0x80
        }
        /// End of a line comment starting at `at` (index after its newline, or n).
        func lineEnd(_ at: Int) -> Int {
            var j = at
            while j < n && bytes[j] != 0x0A { j += 1 }
            return j
        }
        /// End of a (nested) block comment starting at `at` ("/*").
        func blockEnd(_ at: Int) -> Int {
            var depth = 0, j = at
            while j < n {
                if bytes[j] == 0x2F && j + 1 < n && bytes[j + 1] == 0x2A { depth += 1; j += 2; continue }
                if bytes[j] == 0x2A && j + 1 < n && bytes[j + 1] == 0x2F {
                    depth -= 1; j += 2
                    if depth == 0 { return j }
                    continue
                }
                j += 1
            }
            return n
        }
        /// A dollar-quote opening tag at `at` (`$` … `$`), or nil.
        func dollarTag(_ at: Int) -> [UInt8]? {
            var j = at + 1
            if j < n && bytes[j] == 0x24 { return [0x24, 0x24] }
            guard j < n, isIdentStart(bytes[j]) else { return nil }
            while j < n && isIdentByte(bytes[j]) && bytes[j] != 0x24 { j += 1 }
            guard j < n && bytes[j] == 0x24 else { return nil }
            return Array(bytes[at...j])
        }

        while i < n {
            let b = bytes[i]
            // Between statements.
            if b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D { i += 1; continue }
            if b == 0x2D && i + 1 < n && bytes[i + 1] == 0x2D {
                let end = lineEnd(i)
                pieces.append(.comment(text(i, end)))
                i = end
                continue
            }
            if b == 0x2F && i + 1 < n && bytes[i + 1] == 0x2A {
                let end = blockEnd(i)
                pieces.append(.comment(text(i, end)))
                i = end
                continue
            }
            if b == 0x5C {
                let end = lineEnd(i)
                pieces.append(.metaCommand(text(i, end)))
                i = end
                continue
            }
            // A statement.
            let start = i
            var parenDepth = 0, beginDepth = 0
            var leadingWords: [String] = []  // the first identifiers, lower-cased (CREATE [OR REPLACE] FUNCTION|PROCEDURE)
            var identifierCount = 0
            var ended = false
            while i < n {
                let c = bytes[i]
                switch c {
                case 0x27:  // '…'
                    let escapes = i > start && (bytes[i - 1] == 0x45 || bytes[i - 1] == 0x65)
                        && (i - 1 == start || !isIdentByte(bytes[i - 2]))
                    i += 1
                    while i < n {
                        if escapes && bytes[i] == 0x5C { i += 2; continue }
                        if bytes[i] == 0x27 {
                            if i + 1 < n && bytes[i + 1] == 0x27 { i += 2; continue }
                            break
                        }
                        i += 1
                    }
                    i += 1
                case 0x22:  // "…"
                    i += 1
                    while i < n {
                        if bytes[i] == 0x22 {
                            if i + 1 < n && bytes[i + 1] == 0x22 { i += 2; continue }
                            break
                        }
                        i += 1
                    }
                    i += 1
                case 0x24 where i == start || !isIdentByte(bytes[i - 1]):
                    if let tag = dollarTag(i) {
                        var j = i + tag.count
                        var closed = n
                        while j + tag.count <= n {
                            if bytes[j] == 0x24 && Array(bytes[j..<(j + tag.count)]) == tag { closed = j + tag.count; break }
                            j += 1
                        }
                        i = closed
                    } else {
                        i += 1
                    }
                case 0x2D where i + 1 < n && bytes[i + 1] == 0x2D:
                    i = lineEnd(i)
                case 0x2F where i + 1 < n && bytes[i + 1] == 0x2A:
                    i = blockEnd(i)
                case 0x28: parenDepth += 1; i += 1
                case 0x29: parenDepth = max(0, parenDepth - 1); i += 1
                case 0x3B where parenDepth == 0 && beginDepth == 0:
                    i += 1
                    ended = true
                default:
                    if isIdentStart(c) && (i == start || !isIdentByte(bytes[i - 1])) {
                        var j = i
                        while j < n && isIdentByte(bytes[j]) { j += 1 }
                        let word = text(i, j).lowercased()
                        // psql's heuristic for SQL-standard function bodies (psqlscan.l).
                        if identifierCount < 4 && ["create", "function", "procedure", "or", "replace"].contains(word) {
                            leadingWords.append(word)
                        } else if identifierCount < 4 {
                            leadingWords.append("")
                        }
                        identifierCount += 1
                        let routine = leadingWords.first == "create" && leadingWords.count > 1
                            && (leadingWords[1] == "function" || leadingWords[1] == "procedure"
                                || (leadingWords[1] == "or" && leadingWords.count > 3 && (leadingWords[3] == "function" || leadingWords[3] == "procedure")))
                        if routine && parenDepth == 0 {
                            if word == "begin" { beginDepth += 1 }
                            else if word == "case" && beginDepth >= 1 { beginDepth += 1 }
                            else if word == "end" && beginDepth > 0 { beginDepth -= 1 }
                        }
                        i = j
                    } else {
                        i += 1
                    }
                }
                if ended { break }
            }
            pieces.append(.statement(text(start, min(i, n))))
        }
        return pieces
    }
}
