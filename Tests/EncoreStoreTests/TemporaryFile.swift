@testable import EncoreStore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes `contents` to a fresh file under a unique temporary directory and returns its path;
/// the directory is removed by `remove(_:)`.
enum TemporaryFile {
    static func write(_ contents: String, name: String) -> String {
        var template = Array("/tmp/encore-store-tests-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        let path = dir + "/" + name
        let f = fopen(path, "wb")!
        var bytes = Array(contents.utf8)
        _ = fwrite(&bytes, 1, bytes.count, f)
        fclose(f)
        return path
    }

    static func remove(_ path: String) {
        unlink(path)
        let dir = String(path[..<path.lastIndex(of: "/")!])
        rmdir(dir)
    }

    /// Loads `contents` as a customer file named `name` and removes it.
    static func loadCustomers(_ contents: String, name: String) throws -> CustomerStoreBox {
        let path = write(contents, name: name)
        defer { remove(path) }
        return CustomerStoreBox(try CustomerStore.load(contentsOf: path, progress: nil), path: path)
    }

    /// The error thrown by loading `contents` as `name`, or nil if it loads.
    static func loadError(_ contents: String, name: String) -> StoreError? {
        do {
            _ = try loadCustomers(contents, name: name)
            return nil
        } catch {
            return error as? StoreError
        }
    }
}

/// A loaded store plus the path it came from (already removed), for messages.
struct CustomerStoreBox {
    let store: CustomerStore
    let path: String
    init(_ store: CustomerStore, path: String) {
        self.store = store
        self.path = path
    }
}
