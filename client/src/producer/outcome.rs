//! How a batch went, shared by every record of it: one allocation and one resolution per batch,
//! however many records wait on it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use super::RecordMetadata;
use crate::error::Result;
use crate::producer::accumulator::copy_error;

/// The batch's result, set once: its base offset and log append time (-1 when unknown), or why
/// it failed.
pub(crate) struct BatchOutcome {
    topic: Arc<str>,
    partition: i32,
    result: OnceLock<Result<(i64, i64)>>,
    /// Tasks waiting on records of the batch. A record's future keeps the index of its entry,
    /// so polling it again replaces its waker instead of adding another.
    wakers: Mutex<Vec<Waker>>,
}

impl BatchOutcome {
    pub(crate) fn new(topic: Arc<str>, partition: i32) -> BatchOutcome {
        BatchOutcome {
            topic,
            partition,
            result: OnceLock::new(),
            wakers: Mutex::new(Vec::new()),
        }
    }

    /// Sets the result unless one is set already, and wakes whoever waits.
    pub(crate) fn resolve(&self, result: Result<(i64, i64)>) {
        if self.result.set(result).is_err() {
            return;
        }
        let wakers = std::mem::take(&mut *self.wakers.lock().expect("outcome wakers"));
        for w in wakers {
            w.wake();
        }
    }

    fn metadata(&self, index: u32, timestamp: i64) -> Option<Result<RecordMetadata>> {
        Some(match self.result.get()? {
            Ok((base_offset, log_append_time)) => Ok(RecordMetadata {
                // Not `to_string`: through `Display` it costs more than the copy.
                topic: String::from(&*self.topic),
                partition: self.partition,
                offset: if *base_offset < 0 {
                    -1
                } else {
                    base_offset + index as i64
                },
                timestamp: if *log_append_time >= 0 {
                    *log_append_time
                } else {
                    timestamp
                },
            }),
            Err(e) => Err(copy_error(e)),
        })
    }
}

/// The outcome of one `send`: resolves once the record is acknowledged or has failed.
pub struct DeliveryFuture {
    outcome: Arc<BatchOutcome>,
    /// The record's place in its batch: its offset is the batch's base offset plus this.
    index: u32,
    timestamp: i64,
    waker_slot: Option<usize>,
}

impl DeliveryFuture {
    pub(crate) fn new(outcome: Arc<BatchOutcome>, index: u32, timestamp: i64) -> DeliveryFuture {
        DeliveryFuture {
            outcome,
            index,
            timestamp,
            waker_slot: None,
        }
    }
}

impl DeliveryFuture {
    /// Whether the outcome is known, so awaiting the future would not wait. Cheaper than
    /// polling: nothing is built and no waker is registered.
    pub fn is_resolved(&self) -> bool {
        self.outcome.result.get().is_some()
    }
}

impl std::fmt::Debug for DeliveryFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryFuture")
            .field("topic", &self.outcome.topic)
            .field("partition", &self.outcome.partition)
            .field("index", &self.index)
            .field("resolved", &self.outcome.result.get().is_some())
            .finish()
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.poll_with(cx, |f| f.outcome.metadata(f.index, f.timestamp))
    }
}

impl DeliveryFuture {
    /// Waits for the outcome like awaiting the future does, without building the record's
    /// metadata: for callers that send millions of records and only need to know each was
    /// stored.
    pub async fn stored(mut self) -> Result<()> {
        std::future::poll_fn(|cx| {
            self.poll_with(cx, |f| {
                let result = f.outcome.result.get()?;
                Some(result.as_ref().map(|_| ()).map_err(copy_error))
            })
        })
        .await
    }

    /// Ready once `outcome` says so, registering the waker (once per task) until then.
    fn poll_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: impl Fn(&DeliveryFuture) -> Option<T>,
    ) -> Poll<T> {
        if let Some(done) = outcome(self) {
            return Poll::Ready(done);
        }
        let this = self;
        let mut wakers = this.outcome.wakers.lock().expect("outcome wakers");
        // Checked again under the lock: `resolve` sets the result before it takes the wakers,
        // so either the result shows now or this waker is among those it wakes.
        if let Some(done) = outcome(this) {
            return Poll::Ready(done);
        }
        match this.waker_slot {
            Some(i) if wakers[i].will_wake(cx.waker()) => {}
            Some(i) => wakers[i] = cx.waker().clone(),
            None => {
                this.waker_slot = Some(wakers.len());
                wakers.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ClientError;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn records_of_a_batch_resolve_from_one_outcome() {
        let outcome = Arc::new(BatchOutcome::new(Arc::from("t"), 3));
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut first = DeliveryFuture::new(outcome.clone(), 0, 100);
        let mut second = DeliveryFuture::new(outcome.clone(), 1, 101);
        for _ in 0..3 {
            assert!(Pin::new(&mut first).poll(&mut cx).is_pending());
        }
        assert!(Pin::new(&mut second).poll(&mut cx).is_pending());
        assert_eq!(
            outcome.wakers.lock().unwrap().len(),
            2,
            "one entry per future"
        );
        outcome.resolve(Ok((40, -1)));
        outcome.resolve(Err(ClientError::Closed));
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        let Poll::Ready(Ok(m)) = Pin::new(&mut second).poll(&mut cx) else {
            panic!("resolved")
        };
        assert_eq!(
            (m.topic.as_str(), m.partition, m.offset, m.timestamp),
            ("t", 3, 41, 101)
        );

        let failed = Arc::new(BatchOutcome::new(Arc::from("t"), 0));
        let mut f = DeliveryFuture::new(failed.clone(), 5, 0);
        failed.resolve(Err(ClientError::Timeout("late".into())));
        assert!(matches!(
            Pin::new(&mut f).poll(&mut cx),
            Poll::Ready(Err(ClientError::Timeout(_)))
        ));
        let appended = Arc::new(BatchOutcome::new(Arc::from("t"), 0));
        appended.resolve(Ok((-1, 7)));
        let mut f = DeliveryFuture::new(appended, 2, 1);
        let Poll::Ready(Ok(m)) = Pin::new(&mut f).poll(&mut cx) else {
            panic!("resolved")
        };
        assert_eq!(
            (m.offset, m.timestamp),
            (-1, 7),
            "unknown offsets stay unknown"
        );
    }
}
