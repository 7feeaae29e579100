/// Fixed-capacity little-endian binary writer into reused memory (no allocation). Writing past
/// the capacity marks the buffer overflowed; such a record is dropped and counted.
public struct LogBuffer {
    let base: UnsafeMutableRawPointer
    public let capacity: Int
    public private(set) var count = 0
    public private(set) var overflowed = false

    init(base: UnsafeMutableRawPointer, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    mutating func reset() {
        count = 0
        overflowed = false
    }

    @inline(__always)
    private mutating func reserve(_ n: Int) -> UnsafeMutableRawPointer? {
        guard count + n <= capacity else {
            overflowed = true
            return nil
        }
        let p = base + count
        count += n
        return p
    }

    /// A u16 count; a count beyond 65,535 cannot be read back, so the record is marked
    /// overflowed (dropped and counted) instead.
    mutating func count16(_ n: Int) {
        guard n <= Int(UInt16.max) else {
            overflowed = true
            return
        }
        u16(UInt16(n))
    }

    mutating func u8(_ v: UInt8) { reserve(1)?.storeBytes(of: v, as: UInt8.self) }
    mutating func u16(_ v: UInt16) { reserve(2)?.storeBytes(of: v.littleEndian, toByteOffset: 0, as: UInt16.self) }
    mutating func u32(_ v: UInt32) { reserve(4)?.storeBytes(of: v.littleEndian, toByteOffset: 0, as: UInt32.self) }
    mutating func u64(_ v: UInt64) { reserve(8)?.storeBytes(of: v.littleEndian, toByteOffset: 0, as: UInt64.self) }
    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    mutating func f64(_ v: Double) { u64(v.bitPattern) }

    /// A length-prefixed (u16) byte string, truncated at 65,535 bytes.
    mutating func string(_ s: UnsafeRawBufferPointer) {
        let n = min(s.count, Int(UInt16.max))
        u16(UInt16(n))
        guard n > 0, let p = reserve(n) else { return }
        p.copyMemory(from: s.baseAddress!, byteCount: n)
    }
}

/// Reads what `LogBuffer` wrote (the writer thread's side). Reads past the end return zeros and
/// set `failed`.
public struct LogReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0
    public private(set) var failed = false

    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    @inline(__always)
    private mutating func take(_ n: Int) -> UnsafeRawPointer? {
        guard offset + n <= bytes.count, let base = bytes.baseAddress else {
            failed = true
            return nil
        }
        let p = base + offset
        offset += n
        return p
    }

    public mutating func u8() -> UInt8 { take(1)?.load(as: UInt8.self) ?? 0 }
    public mutating func u16() -> UInt16 { UInt16(littleEndian: take(2)?.loadUnaligned(as: UInt16.self) ?? 0) }
    public mutating func u32() -> UInt32 { UInt32(littleEndian: take(4)?.loadUnaligned(as: UInt32.self) ?? 0) }
    public mutating func u64() -> UInt64 { UInt64(littleEndian: take(8)?.loadUnaligned(as: UInt64.self) ?? 0) }
    public mutating func i64() -> Int64 { Int64(bitPattern: u64()) }
    public mutating func f32() -> Float { Float(bitPattern: u32()) }
    public mutating func f64() -> Double { Double(bitPattern: u64()) }
    public mutating func string() -> UnsafeRawBufferPointer {
        let n = Int(u16())
        guard let p = take(n) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: p, count: n)
    }
}
