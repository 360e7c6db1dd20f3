import Synchronization

/// Collects work that arrives together into shared batches (one transaction, one commit each),
/// while keeping the order of work that shares a key.
///
/// Ordering: a key (one patient of one facility, say) is in at most one running batch, and at most
/// once in it; later work with that key waits in arrival order until the batch holding it has
/// finished. So two messages about one patient, arriving on different connections, apply in the
/// order they arrived, never side by side. Work may carry several keys (a merge names two
/// patients); it waits until none of them is busy.
///
/// Batching: up to `concurrency` batches run at once; whatever queues while they run forms the
/// next ones, so the batch size follows the load: one message when the line is quiet, dozens
/// under a burst. While a batch runs, another starts only once `minimumBatch` jobs wait (or when
/// a running batch ends): otherwise, with a few busy connections, every message would start a
/// batch of its own the moment it arrived and nothing would be shared. A quiet line never waits,
/// since with nothing running the first job starts at once. Work that cannot share a transaction
/// (`solo`) runs as a batch of its own.
final class GroupCommit<Work: Sendable, Answer: Sendable>: Sendable {
    typealias Run = @Sendable ([Work]) async -> [Result<Answer, any Error>]

    private struct Job {
        let keys: [String]
        let solo: Bool
        let work: Work
        let run: Run
        let continuation: CheckedContinuation<Answer, any Error>
    }

    private struct State {
        var queue: [Job] = []
        var busyKeys: Set<String> = []
        var running = 0
    }

    private let state = Mutex(State())
    let maximumBatch: Int
    let minimumBatch: Int
    let concurrency: Int

    init(maximumBatch: Int, concurrency: Int, minimumBatch: Int = 4) {
        precondition(maximumBatch > 0 && concurrency > 0)
        self.maximumBatch = maximumBatch
        self.minimumBatch = max(1, min(minimumBatch, maximumBatch))
        self.concurrency = concurrency
    }

    /// Queues the work and returns its answer once the batch holding it has finished. `run`
    /// applies a batch (the same function for every submitter: a batch runs its first job's).
    func submit(keys: [String], solo: Bool, _ work: Work, run: @escaping Run) async throws -> Answer {
        try await withCheckedThrowingContinuation { continuation in
            let batches = state.withLock { state in
                state.queue.append(Job(keys: keys, solo: solo, work: work, run: run, continuation: continuation))
                return take(&state)
            }
            for batch in batches { start(batch) }
        }
    }

    private func start(_ batch: [Job]) {
        Task {
            let answers = await batch[0].run(batch.map(\.work))
            for (job, answer) in zip(batch, answers) { job.continuation.resume(with: answer) }
            let next = state.withLock { state in
                state.running -= 1
                for job in batch { state.busyKeys.subtract(job.keys) }
                return take(&state)
            }
            for batch in next { start(batch) }
        }
    }

    /// The batches to start now: oldest work first, skipping keys already busy.
    private func take(_ state: inout State) -> [[Job]] {
        var batches: [[Job]] = []
        while state.running < concurrency, !state.queue.isEmpty {
            // Something is running and will call again when it ends: wait for company.
            if state.running > 0, state.queue.count < minimumBatch { break }
            var batch: [Job] = []
            var keys: Set<String> = []
            var left: [Job] = []
            left.reserveCapacity(state.queue.count)
            var solo = false
            for job in state.queue {
                let fits =
                    !solo && batch.count < maximumBatch && state.busyKeys.isDisjoint(with: job.keys) && keys.isDisjoint(with: job.keys)
                    && (batch.isEmpty || !job.solo)
                if fits {
                    batch.append(job)
                    solo = job.solo
                } else {
                    left.append(job)
                }
                // A busy or already-taken key holds back every later job with that key.
                keys.formUnion(job.keys)
            }
            guard !batch.isEmpty else { break }
            state.queue = left
            for job in batch { state.busyKeys.formUnion(job.keys) }
            state.running += 1
            batches.append(batch)
        }
        return batches
    }
}
