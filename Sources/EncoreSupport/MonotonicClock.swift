#if canImport(Glibc)
    import Glibc
#endif

/// Monotonic time in nanoseconds (CLOCK_MONOTONIC, read through the vDSO: no syscall).
public enum MonotonicClock {
    @inlinable @inline(__always)
    public static var nowNanos: UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
