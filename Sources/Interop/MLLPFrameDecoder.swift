import NIOCore

/// MLLP framing as a state machine: `<VT>` message `<FS><CR>`. Bytes outside a frame (other than
/// line-ending noise between frames) and frames over the size cap are protocol violations, raised
/// as errors so the connection is closed rather than resynchronised on a guess.
public struct MLLPFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    public static let startBlock: UInt8 = 0x0B
    public static let endBlock: UInt8 = 0x1C
    public static let carriageReturn: UInt8 = 0x0D

    public enum Violation: Error, Equatable, CustomStringConvertible {
        case bytesOutsideFrame(UInt8)
        case frameTooLarge(limit: Int)
        case missingCarriageReturnAfterEnd
        case truncatedFrame

        public var description: String {
            switch self {
            case .bytesOutsideFrame(let byte): "byte 0x\(String(byte, radix: 16)) outside an MLLP frame"
            case .frameTooLarge(let limit): "MLLP frame exceeds \(limit) bytes"
            case .missingCarriageReturnAfterEnd: "MLLP end block not followed by carriage return"
            case .truncatedFrame: "connection closed inside an MLLP frame"
            }
        }
    }

    public let maximumFrameSize: Int
    /// How far into the current frame the end-block search has already looked, so a slow sender
    /// dribbling a large message costs linear time, not quadratic.
    private var scanned = 0

    public init(maximumFrameSize: Int) {
        self.maximumFrameSize = maximumFrameSize
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        // Tolerate CR/LF between frames: several HIS senders end each frame with an extra newline.
        while let byte = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), byte != Self.startBlock {
            guard byte == 0x0A || byte == 0x0D else { throw Violation.bytesOutsideFrame(byte) }
            buffer.moveReaderIndex(forwardBy: 1)
        }
        guard buffer.readableBytes > 0 else { return .needMoreData }
        let view = buffer.readableBytesView
        let bodyStart = view.startIndex + 1
        let searchFrom = bodyStart + scanned
        guard let end = view[searchFrom...].firstIndex(of: Self.endBlock) else {
            scanned = view.count - 1
            if scanned > maximumFrameSize { throw Violation.frameTooLarge(limit: maximumFrameSize) }
            return .needMoreData
        }
        let bodyLength = end - bodyStart
        if bodyLength > maximumFrameSize { throw Violation.frameTooLarge(limit: maximumFrameSize) }
        guard end + 1 < view.endIndex else {
            scanned = bodyLength
            return .needMoreData
        }
        guard view[end + 1] == Self.carriageReturn else { throw Violation.missingCarriageReturnAfterEnd }
        buffer.moveReaderIndex(forwardBy: 1)
        let frame = buffer.readSlice(length: bodyLength)!
        buffer.moveReaderIndex(forwardBy: 2)
        scanned = 0
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        let state = try decode(context: context, buffer: &buffer)
        if state == .needMoreData, buffer.readableBytesView.contains(where: { $0 != 0x0A && $0 != 0x0D }) {
            throw Violation.truncatedFrame
        }
        return state
    }
}

/// Wraps an outbound message in an MLLP frame, written as one buffer so peers that read each
/// acknowledgement with a single `recv` get all of it.
public struct MLLPFrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = ByteBuffer

    public init() {}

    public func encode(data: ByteBuffer, out: inout ByteBuffer) throws {
        out.reserveCapacity(data.readableBytes + 3)
        out.writeInteger(MLLPFrameDecoder.startBlock)
        out.writeImmutableBuffer(data)
        out.writeInteger(MLLPFrameDecoder.endBlock)
        out.writeInteger(MLLPFrameDecoder.carriageReturn)
    }
}
