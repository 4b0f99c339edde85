//! The ordered write queue both transports share: writes, and the bus messages announcing them,
//! leave in call order, in pipelined batches; only how a batch is sent differs
//! ([`Link::send_batch`]: one pipeline, or one per cluster slot).

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::AcqRel, Ordering::Acquire};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use healcache::codec::Token;
use healcache::tier::scripts::{seen_token, split_envelope};
use healcache::tier::{Expect, TransportError, WriteReply, WriteRequest};
use healcache_rt::ForkGuard;
use redis::{Cmd, Pipeline, RedisResult, Value};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::common::{
    closed_error, conn_for, run, shut, token_bytes, write_reply, Link, Phase, Scripts, WRITE_BATCH, WRITE_QUEUE,
};

/// What the ordered queue carries: writes, and the bus messages announcing them, so a message is
/// sent after the write it announces and messages leave in the order they were numbered.
pub(crate) enum Queued {
    Write(WriteRequest),
    Publish { channel: String, message: Vec<u8>, deadline: Duration },
}

impl Queued {
    fn deadline(&self) -> Duration {
        match self {
            Queued::Write(w) => w.deadline,
            Queued::Publish { deadline, .. } => *deadline,
        }
    }

    /// Whether a batch holding the item may connect again (see [`crate::common::conn_for`]): a
    /// write, which the breaker admitted; not a message alone.
    pub(crate) fn connects(&self) -> bool {
        matches!(self, Queued::Write(_))
    }

    /// The key whose slot the item goes to.
    pub(crate) fn key(&self) -> &str {
        match self {
            Queued::Write(w) => &w.keys.value,
            Queued::Publish { channel, .. } => channel,
        }
    }
}

pub(crate) struct Job {
    req: Queued,
    reply: oneshot::Sender<Result<WriteReply, TransportError>>,
}

/// This process's write queue: its sender, and the gate that lets a write skip it.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
    gate: Arc<Gate>,
}

/// Lets a write skip the queue when nothing is queued or under way: its caller's task sends it
/// straight to the connection, saving the hop through the writer task (about 2 us of a fenced
/// write's 20 here). Such a write holds every write called after it in the queue until it is
/// answered or dropped, so writes still reach Redis in call order.
pub(crate) struct Gate {
    /// [`DIRECT`] while a write goes straight; below it, how many queued items are not yet
    /// answered.
    state: AtomicU64,
    /// How many queued items are not yet sent: [`WRITE_QUEUE`] at most (the writer task may
    /// hold some out of the channel while a write goes straight).
    waiting: AtomicUsize,
    /// Wakes the writer task when a direct write ends.
    ended: Notify,
}

const DIRECT: u64 = 1 << 63;

impl Gate {
    fn new() -> Self {
        Gate { state: AtomicU64::new(0), waiting: AtomicUsize::new(0), ended: Notify::new() }
    }

    /// Takes the direct way, if nothing is queued or going straight.
    fn try_direct(&self) -> bool {
        self.state.compare_exchange(0, DIRECT, AcqRel, Acquire).is_ok()
    }

    /// Counts a queued item; false (nothing counted) when [`WRITE_QUEUE`] already wait.
    fn queued(&self) -> bool {
        if self.waiting.fetch_add(1, AcqRel) >= WRITE_QUEUE {
            self.waiting.fetch_sub(1, AcqRel);
            return false;
        }
        self.state.fetch_add(1, AcqRel);
        true
    }

    /// `n` items taken from the queue are being sent (or dropped: their callers left).
    fn sending(&self, n: usize) {
        self.waiting.fetch_sub(n, AcqRel);
    }

    fn answered(&self, n: u64) {
        self.state.fetch_sub(n, AcqRel);
    }

    fn end_direct(&self) {
        self.state.fetch_and(!DIRECT, AcqRel);
        self.ended.notify_one();
    }

    /// Returns once no write is going straight.
    async fn no_direct(&self) {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.state.load(Acquire) & DIRECT == 0 {
                return;
            }
            ended.await;
        }
    }
}

/// Held by a write going straight: ends its turn when it is answered or dropped, and keeps the
/// queue's sender meanwhile, so a closing transport is shut only after it.
struct Direct {
    gate: Arc<Gate>,
    _tx: mpsc::Sender<Job>,
}

impl Drop for Direct {
    fn drop(&mut self) {
        self.gate.end_direct();
    }
}

/// Queues a write or a publish now, in call order (the contract of `Transport::write` and
/// `Transport::publish`); the future answers it. A write with nothing ahead of it goes straight
/// (see [`Gate`]). A closing transport refuses it at once.
pub(crate) fn enqueue<L: Link>(l: &L, req: Queued) -> BoxFuture<'static, Result<WriteReply, TransportError>> {
    let Some(q) = writer(l) else {
        return futures::future::ready(Err(closed_error())).boxed();
    };
    let req = match req {
        Queued::Write(w) if q.gate.try_direct() => return direct(l.tasks(), w, Direct { gate: q.gate, _tx: q.tx }),
        req => req,
    };
    if !q.gate.queued() {
        return futures::future::ready(Err(queue_full())).boxed();
    }
    try_queue(&q.tx, req).unwrap_or_else(|e| {
        q.gate.sending(1);
        q.gate.answered(1);
        futures::future::ready(Err(e)).boxed()
    })
}

/// A write going straight: called on the I/O thread, it is sent by the task that polls it
/// (which should poll it soon: writes called after it wait for it); called elsewhere, it is sent
/// now by a task of its own, as a queued write would be.
fn direct<L: Link>(l: L, w: WriteRequest, turn: Direct) -> BoxFuture<'static, Result<WriteReply, TransportError>> {
    let send = async move {
        let _turn = turn;
        tokio::time::timeout(w.deadline, send_one(&l, &w)).await.unwrap_or(Err(TransportError::Timeout))
    };
    if healcache_rt::on_io_thread() {
        send.boxed()
    } else {
        run(send)
    }
}

/// Queues `req` on `tx`; a full queue refuses it at once rather than growing.
fn try_queue(
    tx: &mpsc::Sender<Job>,
    req: Queued,
) -> Result<BoxFuture<'static, Result<WriteReply, TransportError>>, TransportError> {
    let (reply, answer) = oneshot::channel();
    match tx.try_send(Job { req, reply }) {
        Ok(()) => Ok(answer.map(|r| r.unwrap_or_else(|_| Err(writer_stopped()))).boxed()),
        Err(mpsc::error::TrySendError::Full(_)) => Err(queue_full()),
        Err(mpsc::error::TrySendError::Closed(_)) => Err(writer_stopped()),
    }
}

/// A write refused because the queue holds its bound of waiting writes.
fn queue_full() -> TransportError {
    TransportError::Io("write queue full".into())
}

/// A write the writer task will not send: it has stopped.
fn writer_stopped() -> TransportError {
    TransportError::Io("the writer stopped".into())
}

#[cfg(test)]
fn queue_on(tx: &mpsc::Sender<Job>, req: Queued) -> BoxFuture<'static, Result<WriteReply, TransportError>> {
    try_queue(tx, req).unwrap_or_else(|e| futures::future::ready(Err(e)).boxed())
}

/// A write queue of [`WRITE_QUEUE`] places.
fn write_queue() -> (mpsc::Sender<Job>, mpsc::Receiver<Job>) {
    mpsc::channel(WRITE_QUEUE)
}

/// Moves the next batch into `jobs`: what is queued, [`WRITE_BATCH`] at most; 0 once the queue
/// is closed and empty.
async fn next_batch(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>) -> usize {
    rx.recv_many(jobs, WRITE_BATCH).await
}

/// This process's write queue, starting its writer task on first use; `None` once the
/// transport is closing.
fn writer<L: Link>(l: &L) -> Option<Writer> {
    let mut slot = l.state().writer.lock().unwrap_or_else(|p| p.into_inner());
    // checked under the lock `close` takes the sender with
    if !l.state().open() {
        return None;
    }
    if let Some(w) = slot.as_ref().and_then(|g| g.get()) {
        return Some(w.clone());
    }
    let (tx, rx) = write_queue();
    let w = Writer { tx, gate: Arc::new(Gate::new()) };
    healcache_rt::handle().spawn(write_loop(l.tasks(), rx, Arc::clone(&w.gate)));
    *slot = Some(ForkGuard::new(w.clone()));
    Some(w)
}

/// The writer task: sends what is queued until the queue's sender is gone (the transport is
/// closing) and the queue is empty, then shuts the transport; at a close's deadline it gives up
/// what it still holds (each caller gets an error).
async fn write_loop<L: Link>(l: L, rx: mpsc::Receiver<Job>, gate: Arc<Gate>) {
    let mut phase = l.state().phase.subscribe();
    let closed = async move {
        let _ = phase.wait_for(|p| *p == Phase::Closed).await;
    };
    tokio::select! {
        () = send_queued(&l, rx, &gate) => {}
        () = closed => {}
    }
    if !l.state().open() {
        shut(l.state());
    }
}

/// Runs the queued writes in call order, in pipelined batches of what is queued (one round
/// trip each, rather than one per write: a burst of thousands then fits in one deadline); Redis
/// runs a connection's commands in the order sent, so they land in the order they were made.
/// A batch is answered before the next is sent, so order across batches holds too.
/// A write whose caller has stopped waiting (its deadline passed) is not sent. Nothing is sent
/// while a write called before goes straight (see [`Gate`]).
async fn send_queued<L: Link>(l: &L, mut rx: mpsc::Receiver<Job>, gate: &Gate) {
    let mut jobs = Vec::with_capacity(WRITE_BATCH);
    while next_batch(&mut rx, &mut jobs).await > 0 {
        let taken = jobs.len();
        gate.no_direct().await;
        gate.sending(taken);
        send_jobs(l, &mut jobs).await;
        gate.answered(taken as u64);
    }
}

/// Sends a batch of jobs and answers each.
async fn send_jobs<L: Link>(l: &L, jobs: &mut Vec<Job>) {
    jobs.retain(|j| !j.reply.is_closed());
    let (reqs, mut replies): (Vec<Queued>, Vec<_>) = jobs.drain(..).map(|j| (j.req, j.reply)).unzip();
    if reqs.is_empty() {
        return;
    }
    {
        // a batch on a connection that stopped answering is abandoned once every caller's
        // deadline has passed, so it never holds up the queue behind it
        let gone = futures::future::join_all(replies.iter_mut().map(|r| r.closed()));
        let deadline = reqs.iter().map(|r| r.deadline()).max().unwrap_or_default();
        let n = reqs.len();
        let batch = async {
            tokio::time::timeout(deadline, l.send_batch(reqs))
                .await
                .unwrap_or_else(|_| vec![Err(TransportError::Timeout); n])
        };
        tokio::select! {
            answers = batch => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
            _ = gone => {}
        }
    }
}

/// `reqs` as one pipeline of WRITE script calls and `publish` commands (PUBLISH, SPUBLISH), sent
/// by `send` on a clone of `conn`, an answer per item. A Redis that lost the scripts (restarted,
/// `SCRIPT FLUSH`) is given them again and the pipeline sent once more: every write in it is
/// fenced, so one that had landed lands again as the same newest value, and a message sent twice
/// is a duplicate receivers ignore.
pub(crate) async fn send_pipeline<L, F, Fut>(
    l: &L,
    mut conn: L::Conn,
    reqs: &[&Queued],
    publish: &str,
    send: F,
) -> Vec<Result<WriteReply, TransportError>>
where
    L: Link,
    F: Fn(L::Conn, Pipeline) -> Fut,
    Fut: Future<Output = RedisResult<Vec<RedisResult<Value>>>>,
{
    let all = |e: TransportError| vec![Err(e); reqs.len()];
    let scripts = &l.state().scripts;
    let mut pipe = redis::pipe();
    // an error answers its own item, not the whole pipeline
    pipe.ignore_errors();
    for req in reqs {
        match req {
            Queued::Write(w) => pipe.add_command(write_cmd(scripts, w)),
            Queued::Publish { channel, message, .. } => pipe.cmd(publish).arg(channel).arg(message),
        };
    }
    let mut loaded = false;
    loop {
        let answers = match send(conn.clone(), pipe.clone()).await {
            Ok(a) => a,
            Err(e) => return all(l.failed(e)),
        };
        if !loaded && answers.iter().any(no_script) {
            if let Err(e) = load_scripts(l, &mut conn).await {
                return all(e);
            }
            loaded = true;
            continue;
        }
        return answers
            .into_iter()
            .zip(reqs)
            .map(|(a, req)| match req {
                Queued::Write(w) => write_answer(l, w, a),
                // a publish answers how many subscribers got it: any number is a success
                Queued::Publish { .. } => a.map(|_| WriteReply::Written(Token::default())).map_err(|e| l.failed(e)),
            })
            .collect();
    }
}

/// One write sent alone, as the task that polls it sends it (see [`Gate`]).
async fn send_one<L: Link>(l: &L, w: &WriteRequest) -> Result<WriteReply, TransportError> {
    let mut conn = conn_for(l, true).await?;
    let cmd = write_cmd(&l.state().scripts, w);
    let mut answer = cmd.query_async(&mut conn).await;
    if no_script(&answer) {
        load_scripts(l, &mut conn).await?;
        answer = cmd.query_async(&mut conn).await;
    }
    write_answer(l, w, answer)
}

fn no_script(r: &RedisResult<Value>) -> bool {
    matches!(r, Err(e) if e.code() == Some("NOSCRIPT"))
}

/// Gives the write scripts to a Redis that lost them (restarted, `SCRIPT FLUSH`): every write is
/// fenced, so one sent again after it had landed lands again as the same newest value.
async fn load_scripts<L: Link>(l: &L, conn: &mut L::Conn) -> Result<(), TransportError> {
    let scripts = &l.state().scripts;
    for script in [&scripts.write, &scripts.write_fenced] {
        script.load_async(conn).await.map_err(|e| l.failed(e))?;
    }
    Ok(())
}

/// The script call of a write: WRITE for a rebuild under the fleet lock, else WRITE_SEEN.
fn write_cmd(scripts: &Scripts, w: &WriteRequest) -> Cmd {
    let k = &w.keys;
    // sized once: a write's command is built on every write
    let mut cmd = Cmd::with_capacity(11, 128 + k.value.len() + k.fence.len() + k.lock.len() + w.envelope.len());
    cmd.arg("EVALSHA");
    let cond: Vec<u8> = match w.expect {
        Expect::Any => Vec::new(),
        Expect::Absent => b"absent".to_vec(),
        Expect::Token(t) => token_bytes(t),
        Expect::Fenced(t) => {
            cmd.arg(scripts.write_fenced.get_hash())
                .arg(3)
                .arg(&k.value)
                .arg(&k.fence)
                .arg(&k.lock)
                .arg(t.epoch)
                .arg(t.counter)
                .arg(&w.envelope)
                .arg(w.px_ms)
                .arg(w.release.as_deref().unwrap_or(""));
            return cmd;
        }
    };
    let (head, tail) = split_envelope(&w.envelope);
    cmd.arg(scripts.write.get_hash()).arg(2).arg(&k.value).arg(&k.fence).arg(cond).arg(head).arg(tail).arg(w.px_ms);
    cmd
}

/// A write script's answer: a bare counter from WRITE_SEEN is written under the epoch the
/// envelope named; anything else reads as the scripts' table says.
fn write_answer<L: Link>(l: &L, w: &WriteRequest, a: RedisResult<Value>) -> Result<WriteReply, TransportError> {
    match a {
        Ok(Value::Int(c)) if !matches!(w.expect, Expect::Fenced(_)) => seen_token(&w.envelope, c)
            .map(WriteReply::Written)
            .ok_or_else(|| TransportError::Reply(format!("unexpected WRITE answer {c}"))),
        a => {
            let ints = a.and_then(|v| redis::from_redis_value::<Vec<i64>>(v).map_err(Into::into));
            write_reply(&ints.map_err(|e| l.failed(e))?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use healcache::keys::l2_keys;

    /// Write `i` as the core queues it (its own key, so the order it leaves in shows).
    fn write(i: usize) -> Queued {
        Queued::Write(WriteRequest {
            keys: l2_keys("hc1", &format!("k{i}")),
            envelope: Vec::new(),
            px_ms: 1000,
            expect: Expect::Any,
            deadline: Duration::from_secs(1),
            release: None,
        })
    }

    /// The value key a queued job writes.
    fn key(job: &Job) -> &str {
        job.req.key()
    }

    /// A write queued after the writer stopped is told so, not that the queue is full: the
    /// two call for different things (wait and retry, or give up on this transport).
    #[test]
    fn a_write_queued_after_the_writer_stopped_says_so() {
        let (tx, rx) = write_queue();
        drop(rx);
        let answer = block_on(queue_on(&tx, write(0)));
        assert_eq!(answer, Err(TransportError::Io("the writer stopped".into())));
    }

    /// P5: with nothing draining it, the queue takes exactly 65,536 writes (each waits for its
    /// answer) and refuses the 65,537th at once with a typed error, never growing past the bound;
    /// once drained, every queued write leaves, in call order, and gets its answer.
    #[test]
    fn the_write_queue_takes_65536_writes_and_refuses_the_next_at_once() {
        assert_eq!(WRITE_QUEUE, 65_536);
        let (tx, mut rx) = write_queue();
        let mut answers: Vec<_> = (0..WRITE_QUEUE).map(|i| queue_on(&tx, write(i))).collect();
        assert!(answers.iter_mut().all(|a| a.now_or_never().is_none()), "every queued write waits for its answer");
        let over = queue_on(&tx, write(WRITE_QUEUE)).now_or_never();
        assert_eq!(over, Some(Err(queue_full())));
        assert_eq!(queue_full(), TransportError::Io("write queue full".into()));
        drop(tx);
        let (mut jobs, mut left, mut batches) = (Vec::new(), Vec::new(), 0);
        while block_on(next_batch(&mut rx, &mut jobs)) > 0 {
            batches += 1;
            left.append(&mut jobs);
        }
        assert_eq!((left.len(), batches), (WRITE_QUEUE, WRITE_QUEUE / WRITE_BATCH));
        for (i, job) in left.into_iter().enumerate() {
            assert_eq!(key(&job), l2_keys("hc1", &format!("k{i}")).value);
            let _ = job.reply.send(Ok(WriteReply::Written(Token { epoch: 1, counter: i as u64 })));
        }
        for (i, a) in answers.into_iter().enumerate() {
            assert_eq!(a.now_or_never(), Some(Ok(WriteReply::Written(Token { epoch: 1, counter: i as u64 }))));
        }
    }

    /// P5: one round trip carries at most 512 writes: with 513 waiting a batch takes exactly the
    /// first 512 and the 513th goes in the next; with exactly 512 waiting one batch takes them all.
    #[test]
    fn a_batch_takes_512_writes_and_the_rest_goes_in_the_next() {
        assert_eq!(WRITE_BATCH, 512);
        let (tx, mut rx) = write_queue();
        let _answers: Vec<_> = (0..=WRITE_BATCH).map(|i| queue_on(&tx, write(i))).collect();
        let mut jobs = Vec::new();
        assert_eq!(block_on(next_batch(&mut rx, &mut jobs)), WRITE_BATCH);
        let first: Vec<_> = jobs.iter().map(key).collect();
        let want: Vec<_> = (0..WRITE_BATCH).map(|i| l2_keys("hc1", &format!("k{i}")).value).collect();
        assert_eq!(first, want);
        jobs.clear();
        assert_eq!(block_on(next_batch(&mut rx, &mut jobs)), 1);
        assert_eq!(key(&jobs[0]), l2_keys("hc1", &format!("k{WRITE_BATCH}")).value);
        jobs.clear();

        let _answers: Vec<_> = (0..WRITE_BATCH).map(|i| queue_on(&tx, write(i))).collect();
        assert_eq!(block_on(next_batch(&mut rx, &mut jobs)), WRITE_BATCH);
        assert!(rx.try_recv().is_err(), "nothing left for a second batch");
    }
}
