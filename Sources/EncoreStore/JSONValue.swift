/// A parsed JSON value, as kept for catalog fields Encore does not interpret yet (`Offer.extra`).
///
/// Integers without a fraction or exponent that fit in `Int64` are `.integer`, so cents and
/// counts survive exactly; every other number is `.number`.
public enum JSONValue: Sendable, Hashable, CustomStringConvertible {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses one complete JSON text (surrounding whitespace allowed).
    /// - Throws: `StoreError` with code `.malformed` naming the 1-based column.
    public init(parsing text: String) throws {
        var text = text
        self = try text.withUTF8 { buf in
            let raw = UnsafeRawBufferPointer(buf)
            do {
                var scanner = JSONScanner(raw)
                let value = try scanner.parseValue()
                scanner.skipWhitespace()
                if !scanner.atEnd { throw scanner.syntaxError("unexpected text after the JSON value") }
                return value
            } catch let e as JSONScanner.SyntaxError {
                throw StoreError(.malformed, "malformed JSON at column \(e.column): \(e.reason)")
            }
        }
    }

    /// The value as an `Int64` if it is an integer, or a number with an exact integer value.
    public var exactInteger: Int64? {
        switch self {
        case .integer(let i): return i
        case .number(let d):
            guard d.isFinite, d.rounded() == d, d >= -9.2e18, d <= 9.2e18 else { return nil }
            return Int64(d)
        default: return nil
        }
    }

    /// Compact JSON text for the value (object keys sorted, so the output is deterministic).
    public var description: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .integer(let i): return String(i)
        case .number(let d): return d.isFinite ? "\(d)" : "null"
        case .string(let s): return JSONValue.quote(s)
        case .array(let a): return "[" + a.map(\.description).joined(separator: ",") + "]"
        case .object(let o):
            return "{"
                + o.keys.sorted().map { JSONValue.quote($0) + ":" + o[$0]!.description }
                .joined(separator: ",") + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
