import Testing
import Foundation

@Test func tmpTiming() throws {
    var generator = DecideRequestGenerator(seed: 1)
    let t = Date()
    var n = 0
    for _ in 0..<20000 { n += generator.message().count }
    print("gen", Date().timeIntervalSince(t), n / 20000)
}
