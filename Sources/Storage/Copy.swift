import Logging
import NIOCore
import PostgresNIO

extension PostgresConnection {
    /// Bulk-loads rows with `COPY … FROM STDIN` (text format) inside the caller's transaction:
    /// one protocol exchange for the batch instead of parsing a statement per row. `nil` is NULL.
    /// PostgresNIO quotes the table name whole, so the schema goes on the transaction's search path
    /// (and stays there until the transaction ends: callers write schema-qualified SQL).
    public func copyRows(schema: String, table: String, columns: [String], rows: [[String?]], logger: Logger) async throws {
        guard !rows.isEmpty else { return }
        try await query(PostgresQuery(unsafeSQL: "SET LOCAL search_path TO \(schema)"), logger: logger)
        var buffer = ByteBuffer()
        buffer.reserveCapacity(rows.count * 64)
        for row in rows {
            for (index, value) in row.enumerated() {
                if index > 0 { buffer.writeInteger(UInt8(ascii: "\t")) }
                guard let value else {
                    buffer.writeString("\\N")
                    continue
                }
                for byte in value.utf8 {
                    switch byte {
                    case UInt8(ascii: "\\"): buffer.writeString("\\\\")
                    case UInt8(ascii: "\t"): buffer.writeString("\\t")
                    case UInt8(ascii: "\n"): buffer.writeString("\\n")
                    case UInt8(ascii: "\r"): buffer.writeString("\\r")
                    default: buffer.writeInteger(byte)
                    }
                }
            }
            buffer.writeInteger(UInt8(ascii: "\n"))
        }
        try await copyFrom(table: table, columns: columns, logger: logger) { writer in
            try await writer.write(buffer)
        }
    }
}
