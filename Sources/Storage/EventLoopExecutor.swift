import NIOCore

/// Runs a task's jobs on one SwiftNIO event loop. Work that talks to one PostgreSQL connection
/// many times in a row (a transaction of several statements) runs on that connection's loop with
/// `withTaskExecutorPreference`: each result then resumes the task on the thread that read it,
/// instead of waking a thread of the cooperative pool, which on a small virtual machine costs a
/// few hundred microseconds per statement.
public final class EventLoopExecutor: TaskExecutor, @unchecked Sendable {
    let loop: any EventLoop

    public init(_ loop: any EventLoop) {
        self.loop = loop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
