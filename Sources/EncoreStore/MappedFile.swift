#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A read-only `mmap` of a whole file. Loaders walk it front to back and call `release` on
/// the part they are done with, so the mapped pages leave the process's RSS as the load advances
/// (the page cache keeps them; RSS and peak RSS stay near the size of what was built).
final class MappedFile: @unchecked Sendable {
    /// The path as given, for error messages.
    let path: String
    /// The file's bytes (empty for an empty file).
    let bytes: UnsafeRawBufferPointer
    private let mapping: UnsafeMutableRawPointer?

    /// Maps `path`.
    /// - Throws: `StoreError(.io)` naming the file and the OS reason.
    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw StoreError(.io, "cannot open: \(MappedFile.reason())", file: path) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw StoreError(.io, "cannot stat: \(MappedFile.reason())", file: path) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw StoreError(.io, "not a regular file", file: path) }
        let size = Int(info.st_size)
        guard size > 0 else {
            mapping = nil
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw StoreError(.io, "cannot mmap: \(MappedFile.reason())", file: path)
        }
        _ = madvise(p, size, MADV_SEQUENTIAL)
        mapping = p
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    deinit {
        if let mapping { munmap(mapping, bytes.count) }
    }

    private static func reason() -> String { String(cString: strerror(errno)) }

    /// Drops the whole pages inside `range` from this process's mapping (they are re-read from
    /// the page cache if touched again). Purely a memory hint; contents never change.
    func release(_ range: Range<Int>) {
        guard let mapping else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (range.lowerBound + page - 1) / page * page
        let end = range.upperBound / page * page
        guard end > start else { return }
        _ = madvise(mapping + start, end - start, MADV_DONTNEED)
    }

    /// Number of `\n` bytes in `range`, counted eight bytes at a time.
    func countNewlines(in range: Range<Int>) -> Int {
        guard let base = bytes.baseAddress else { return 0 }
        var n = 0
        var i = range.lowerBound
        let ones: UInt64 = 0x0101_0101_0101_0101
        let low7: UInt64 = 0x7F7F_7F7F_7F7F_7F7F
        while i + 8 <= range.upperBound {
            let x = base.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ (ones &* 0x0A)
            // High bit set in each byte of `x` that is non-zero; the rest are newlines.
            let nonZero = (((x & low7) &+ low7) | x) & ~low7
            n += 8 - nonZero.nonzeroBitCount
            i += 8
        }
        while i < range.upperBound {
            if base.load(fromByteOffset: i, as: UInt8.self) == 0x0A { n += 1 }
            i += 1
        }
        return n
    }

    /// The offset just past the next `\n` at or after `offset` (or the end of the file).
    func lineStart(atOrAfter offset: Int) -> Int {
        guard offset > 0 else { return 0 }
        var i = offset - 1
        while i < bytes.count, bytes[i] != 0x0A { i += 1 }
        return min(i + 1, bytes.count)
    }
}
