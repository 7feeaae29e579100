import EncoreLogging
import EncoreModel
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `encore serve --snapshot-dir D`: the pull mode of a fleet rollout (docs/scaling.md). Every
/// `intervalSeconds` it lists `D`, validates each snapshot file (`*.snap`, not starting with `.`)
/// that is new or changed since the last scan (size or modification time) completely (format,
/// checksum, NaN/Inf, and a signature by a trusted key when `--trusted-key` is given), and
/// activates the newest valid one through the registry (which also binds it to the running
/// catalog and customers and applies the offline gate). "Newest" is the greatest snapshot
/// created-at, then the latest file modification time. A file is activated at most once per
/// content, so an operator's rollback is not undone by the next scan; a newer file is. Every
/// refusal is logged once per file content, with the reason.
///
/// Runs on its own dispatch queue, off the reactor threads; the registry serializes it with the
/// admin plane's writes.
public final class SnapshotDirectoryWatcher: @unchecked Sendable {
    public let directory: String
    public let intervalSeconds: Double
    let registry: ModelRegistry
    private let queue = DispatchQueue(label: "encore-snapshot-dir", qos: .utility)
    private var timer: DispatchSourceTimer?

    /// What the last scans saw of one file. Touched only on `queue`.
    struct Seen {
        var size: Int
        var modifiedNanos: Int64
        /// The snapshot's version and created-at, nil when the file was refused.
        var version: String?
        var createdAtMillis: Int64
        var sha256: String
        /// This content was activated (or refused at activation) already: never tried again.
        var settled = false
    }
    private var seen: [String: Seen] = [:]
    /// Scans done, snapshots activated and files refused since start (for tests and logs).
    private let counts = Mutex((scans: 0, activations: 0, refusals: 0))

    public init(directory: String, intervalSeconds: Double, registry: ModelRegistry) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw SetupError("--snapshot-dir \(directory): no such directory")
        }
        self.directory = directory
        self.intervalSeconds = intervalSeconds
        self.registry = registry
    }

    /// (scans, activations, refusals) since start.
    public var statistics: (scans: Int, activations: Int, refusals: Int) { counts.withLock { $0 } }

    /// Scans once now (before returning, so a server started on a directory serves its newest
    /// snapshot from its first call), then every `intervalSeconds` until `stop`.
    public func start() {
        queue.sync { scan() }
        let timer = DispatchSource.makeTimerSource(queue: queue)
        let interval = max(1, Int(intervalSeconds * 1000))
        timer.schedule(deadline: .now() + .milliseconds(interval), repeating: .milliseconds(interval))
        timer.setEventHandler { [weak self] in self?.scan() }
        self.timer = timer
        timer.resume()
    }

    public func stop() {
        timer?.cancel()
        timer = nil
        queue.sync {}
    }

    /// One pass: validate what changed, then activate the newest valid snapshot not yet tried.
    func scan() {
        counts.withLock { $0.scans += 1 }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            Log.rateLimited("snapshot dir \(directory): cannot list it: \(error.localizedDescription)")
            return
        }
        var present = Set<String>()
        for name in names where name.hasSuffix(".snap") && !name.hasPrefix(".") {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let (size, modified) = Self.fileStat(path) else { continue }
            present.insert(name)
            if let old = seen[name], old.size == size, old.modifiedNanos == modified { continue }
            seen[name] = validate(name: name, path: path, size: size, modifiedNanos: modified)
        }
        seen = seen.filter { present.contains($0.key) }
        activateNewest()
    }

    private func validate(name: String, path: String, size: Int, modifiedNanos: Int64) -> Seen {
        var entry = Seen(size: size, modifiedNanos: modifiedNanos, version: nil, createdAtMillis: 0, sha256: "")
        guard let data = FileManager.default.contents(atPath: path) else {
            refuse(name, "cannot read the file")
            return entry
        }
        do {
            let (snapshot, metadata) = try SnapshotFile.read([UInt8](data), trustedKeys: registry.trustedKeys)
            entry.version = snapshot.version
            entry.createdAtMillis = snapshot.createdAtMillis
            entry.sha256 = metadata.sha256.map { String(format: "%02x", $0) }.joined()
            if registry.activeVersion == snapshot.version { entry.settled = true }
        } catch {
            refuse(name, "\(error)")
        }
        return entry
    }

    private func activateNewest() {
        let candidates = seen.filter { $0.value.version != nil && !$0.value.settled }
        guard
            let (name, entry) = candidates.max(by: {
                ($0.value.createdAtMillis, $0.value.modifiedNanos, $0.key)
                    < ($1.value.createdAtMillis, $1.value.modifiedNanos, $1.key)
            })
        else { return }
        // Only a snapshot newer than every one already settled from this directory replaces it.
        let newestSettled = seen.values.filter { $0.version != nil && $0.settled }.max {
            ($0.createdAtMillis, $0.modifiedNanos) < ($1.createdAtMillis, $1.modifiedNanos)
        }
        if let newestSettled,
            (newestSettled.createdAtMillis, newestSettled.modifiedNanos) > (entry.createdAtMillis, entry.modifiedNanos)
        {
            for key in candidates.keys { seen[key]?.settled = true }
            Log.info(
                "snapshot dir: \(name) (\(entry.version!)) is older than a snapshot already taken from \(directory); not activated"
            )
            return
        }
        seen[name]?.settled = true
        let path = (directory as NSString).appendingPathComponent(name)
        guard let data = FileManager.default.contents(atPath: path) else {
            refuse(name, "cannot read the file")
            return
        }
        do {
            let (info, _) = try registry.push([UInt8](data), activate: true)
            counts.withLock { $0.activations += 1 }
            Log.info("snapshot dir: activated \(info.version) from \(name) (sha256 \(info.sha256.prefix(16))...)")
        } catch {
            // Not valid here (schema, catalog, offline gate): the next scan tries the next newest.
            seen[name]?.version = nil
            refuse(name, error.message)
            return
        }
        // Older valid files are not activated later: only a newer one would be.
        for (key, other) in seen where other.version != nil && !other.settled {
            if (other.createdAtMillis, other.modifiedNanos) < (entry.createdAtMillis, entry.modifiedNanos) {
                seen[key]?.settled = true
            }
        }
    }

    private func refuse(_ name: String, _ reason: String) {
        counts.withLock { $0.refusals += 1 }
        Log.warning("snapshot dir: refused \((directory as NSString).appendingPathComponent(name)): \(reason)")
    }

    /// (size in bytes, modification time in ns) of a regular file, nil otherwise.
    static func fileStat(_ path: String) -> (Int, Int64)? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return (Int(info.st_size), Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
    }
}
