extension Sequence<UInt8> {
    /// Lower-case hex, without `String(format:)`: digests, sealed values and ACKs are hex-encoded
    /// for every message the gateway stores. Inlinable, so that callers in other modules get a
    /// specialised copy instead of generic dispatch per byte.
    @inlinable
    public var hexString: String {
        let bytes = Array(self)
        return String(unsafeUninitializedCapacity: bytes.count * 2) { buffer in
            var index = 0
            for byte in bytes {
                buffer[index] = hexDigit(byte >> 4)
                buffer[index + 1] = hexDigit(byte & 0x0F)
                index += 2
            }
            return index
        }
    }
}

@inlinable
func hexDigit(_ nibble: UInt8) -> UInt8 {
    nibble < 10 ? nibble + 0x30 : nibble + 0x57
}
