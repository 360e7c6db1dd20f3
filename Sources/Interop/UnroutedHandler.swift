import NIOCore

/// Until the HL7 gateway is routed, every message is answered truthfully with an application
/// reject (`MSA|AR`) echoing its control id: the sender knows nothing was stored and keeps the
/// message, instead of waiting for an acknowledgement that never comes.
public struct UnroutedMessageHandler: MLLPMessageHandler {
    public init() {}

    public func handle(message: ByteBuffer, from peer: MLLPPeer) async -> ByteBuffer? {
        ByteBuffer(string: Self.reject(message: String(buffer: message), reason: "HL7 gateway not enabled on this server"))
    }

    /// Builds a minimal original-mode ACK from the message's MSH, or a generic one when the
    /// message has no readable MSH.
    static func reject(message: String, reason: String) -> String {
        var fields: [Substring] = []
        var separator: Character = "|"
        if message.hasPrefix("MSH"), message.count > 8 {
            separator = message[message.index(message.startIndex, offsetBy: 3)]
            let header = message.prefix { $0 != "\r" && $0 != "\n" }
            fields = header.split(separator: separator, omittingEmptySubsequences: false)
        }
        func field(_ n: Int) -> Substring { n < fields.count ? fields[n] : "" }
        let encoding = fields.count > 1 ? String(field(1)) : "^~\\&"
        let s = String(separator)
        // MSH-n sits at index n-1 because MSH-1 is the separator itself.
        let msh = [
            "MSH", encoding, "QIANYUN", "QIANYUN", String(field(2)), String(field(3)), "", "", "ACK", "QY-NAK",
            String(field(10)).isEmpty ? "P" : String(field(10)), String(field(11)).isEmpty ? "2.5" : String(field(11)),
        ].joined(separator: s)
        let msa = ["MSA", "AR", String(field(9)), reason].joined(separator: s)
        return msh + "\r" + msa + "\r"
    }
}
