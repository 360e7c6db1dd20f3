import Foundation

/// The analyst dashboard's files (`Dashboard/`: the page, its script, stylesheet and icon), which
/// SwiftPM copies into this target's resource bundle, `qianyun_DashboardAssets.resources`, beside
/// the binary. A target of its own because the API target has a `Bundle` of its own (FHIR's),
/// which the accessor SwiftPM generates for a target's resources would take for Foundation's.
public enum DashboardAssets {
    /// The content of the dashboard's file `name`, or nil when there is no such file.
    public static func file(_ name: String) -> Data? {
        guard !name.contains("/"), let directory = Bundle.module.url(forResource: "Dashboard", withExtension: nil) else { return nil }
        return try? Data(contentsOf: directory.appendingPathComponent(name))
    }
}
