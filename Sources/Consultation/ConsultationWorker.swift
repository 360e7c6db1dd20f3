import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// The desk's background work: requests left unclaimed past the configured time are escalated.
/// The pass is also callable on demand (`ConsultationService.escalate`, tests).
public struct ConsultationWorker: Service {
    let consultations: ConsultationService
    let interval: Duration
    let logger: Logger

    public init(consultations: ConsultationService, interval: Duration = .seconds(30), logger: Logger) {
        self.consultations = consultations
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let escalated = try await consultations.escalate()
                if escalated > 0 { logger.info("consultations escalated", metadata: ["consultation.escalated": "\(escalated)"]) }
            } catch is CancellationError {
                return
            } catch {
                logger.error("consultation worker step failed", metadata: ["error.type": "\(type(of: error))"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
