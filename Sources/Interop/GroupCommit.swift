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
///
/// A batch that holds the submitter's own work runs on the submitter's task rather than a new
/// one: on a quiet line (one connection, one message at a time) that saves a task start and a
/// thread hand-off per message. Batches started when another finishes run on tasks of their own.
final class GroupCommit<Work: Sendable, Answer: Sendable>: Sendable {
    typealias Run = @Sendable ([Work]) async -> [Result<Answer, any Error>]

    private struct Job {
        let keys: [String]
        let solo: Bool
        let work: Work
        let run: Run
        let answer: AnswerSlot<Answer>
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
        let slot = AnswerSlot<Answer>()
        var batches = state.withLock { state in
            state.queue.append(Job(keys: keys, solo: solo, work: work, run: run, answer: slot))
            return take(&state)
        }
        let mine = batches.firstIndex { batch in batch.contains { $0.answer === slot } }
        let inline = mine.map { batches.remove(at: $0) }
        for batch in batches { start(batch) }
        if let inline { await execute(inline) }
        return try await slot.value()
    }

    private func start(_ batch: [Job]) {
        Task { await execute(batch) }
    }

    /// Runs a batch, answers its jobs, frees its keys and starts what they held back.
    private func execute(_ batch: [Job]) async {
        let answers = await batch[0].run(batch.map(\.work))
        for (job, answer) in zip(batch, answers) { job.answer.fulfil(answer) }
        let next = state.withLock { state in
            state.running -= 1
            for job in batch { state.busyKeys.subtract(job.keys) }
            return take(&state)
        }
        for batch in next { start(batch) }
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

/// One job's answer: set once by whoever ran its batch, awaited once by its submitter, in
/// either order.
final class AnswerSlot<Answer: Sendable>: Sendable {
    private enum State {
        case empty
        case waiting(CheckedContinuation<Answer, any Error>)
        case done(Result<Answer, any Error>)
    }

    private let state = Mutex(State.empty)

    func fulfil(_ result: Result<Answer, any Error>) {
        let waiter: CheckedContinuation<Answer, any Error>? = state.withLock { state in
            if case .waiting(let continuation) = state {
                state = .done(result)
                return continuation
            }
            state = .done(result)
            return nil
        }
        waiter?.resume(with: result)
    }

    func value() async throws -> Answer {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<Answer, any Error>? = state.withLock { state in
                if case .done(let result) = state { return result }
                state = .waiting(continuation)
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
