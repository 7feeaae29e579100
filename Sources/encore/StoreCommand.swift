import ArgumentParser

/// `encore store ...`: feature-store tools (placeholder until the store lands).
struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "store", abstract: "Feature-store tools.")
}
