internal import CEncoreLinux

/// Scheduling priority of the calling thread (Linux nice values apply per thread).
public enum ThreadPriority {
    /// Lowers the calling thread's priority to `nice` (0...19; higher is lower priority).
    /// Returns false if the kernel refused.
    @discardableResult
    public static func lowerCurrentThread(nice: Int32) -> Bool { cencore_set_thread_nice(nice) == 0 }
}
