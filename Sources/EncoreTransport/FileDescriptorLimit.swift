#if canImport(Glibc)
    import Glibc
#endif

/// The process's open-file limit (RLIMIT_NOFILE), which bounds how many connections a server can
/// hold: every connection is a descriptor.
public enum FileDescriptorLimit {
    /// The soft and hard limits now.
    public static func current() -> (soft: Int, hard: Int) {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (1024, 1024) }
        return (clampToInt(limit.rlim_cur), clampToInt(limit.rlim_max))
    }

    /// Raises the soft limit to the hard one (capped at 2^20), as servers do at start: the
    /// default soft limit (1,024) is far below what `--max-connections` asks. Returns the soft
    /// limit in force afterwards.
    @discardableResult
    public static func raiseSoftLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return current().soft }
        let target = min(limit.rlim_max, rlim_t(1 << 20))
        if limit.rlim_cur < target {
            var raised = limit
            raised.rlim_cur = target
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { return clampToInt(target) }
        }
        return clampToInt(limit.rlim_cur)
    }

    /// Descriptors open in this process now (/proc/self/fd), or nil if it cannot be read.
    public static func openDescriptors() -> Int? {
        guard let dir = opendir("/proc/self/fd") else { return nil }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let first = withUnsafeBytes(of: entry.pointee.d_name) { $0[0] }
            if first != UInt8(ascii: ".") { count += 1 }
        }
        return count - 1  // the directory's own descriptor
    }

    /// The connections a server with `threads` reactors can hold under a soft limit of
    /// `softLimit` with `inUse` descriptors already open: each reactor needs a listener, an
    /// epoll set, an eventfd and a reserve descriptor, and 64 are left for files the process
    /// opens later (logs, snapshots, the other plane's listeners).
    public static func connectionBudget(softLimit: Int, inUse: Int, threads: Int) -> Int {
        max(1, softLimit - inUse - 4 * threads - 64)
    }

    private static func clampToInt(_ value: rlim_t) -> Int { value > rlim_t(Int.max) ? Int.max : Int(value) }
}
