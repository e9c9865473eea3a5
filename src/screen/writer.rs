//! The frame writer: a thread that owns the terminal's output and always
//! writes the newest frame.
//!
//! [`FrameWriter::submit`] never blocks: it puts the frame in a one-frame
//! slot, replacing one that has not been written yet. The thread takes the
//! slot's frame, turns it into bytes with a [`Presenter`] and writes them.
//! When the output backs up (a slow SSH link), the frames made meanwhile are
//! dropped and the next write takes the terminal straight to the newest one:
//! no backlog builds, and the screen is never more than one frame behind
//! what the link can carry.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use super::presenter::Presenter;
use super::Frame;

/// Work waiting for the writer thread.
#[derive(Default)]
struct Slot {
    frame: Option<Frame>,
    /// The next frame is drawn whole (the terminal was resized).
    repaint: bool,
    bell: bool,
    /// No more work comes: write what is waiting and stop.
    closed: bool,
    /// The first write error; the thread stops at it.
    error: Option<io::Error>,
}

impl Slot {
    fn has_work(&self) -> bool {
        self.frame.is_some() || self.bell
    }
}

struct Shared {
    slot: Mutex<Slot>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The handle to the writer thread. Dropping it writes the frame still
/// waiting, if any, and waits for the thread to end.
pub struct FrameWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl FrameWriter {
    /// Starts the thread that writes to `out` (flushing after each frame),
    /// turning frames into bytes with `presenter`.
    pub fn spawn<W: Write + Send + 'static>(
        out: W,
        presenter: Presenter,
    ) -> io::Result<FrameWriter> {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot::default()),
            wake: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("frame-writer".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || write_frames(&shared, presenter, out)
            })?;
        Ok(FrameWriter {
            shared,
            thread: Some(thread),
        })
    }

    /// Hands over the newest frame, replacing one not written yet. Returns
    /// the error that stopped the writer, if it has stopped.
    pub fn submit(&self, frame: Frame) -> io::Result<()> {
        self.update(|slot| slot.frame = Some(frame))
    }

    /// Makes the next frame a whole repaint.
    pub fn repaint(&self) -> io::Result<()> {
        self.update(|slot| slot.repaint = true)
    }

    /// Rings the bell with the next write.
    pub fn bell(&self) -> io::Result<()> {
        self.update(|slot| slot.bell = true)
    }

    fn update(&self, change: impl FnOnce(&mut Slot)) -> io::Result<()> {
        let mut slot = self.shared.lock();
        if let Some(e) = &slot.error {
            return Err(io::Error::new(
                e.kind(),
                format!("writing to the terminal: {e}"),
            ));
        }
        change(&mut slot);
        self.shared.wake.notify_one();
        Ok(())
    }
}

impl Drop for FrameWriter {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: waits for work, writes the newest frame, repeats.
fn write_frames(shared: &Shared, mut presenter: Presenter, mut out: impl Write) {
    let mut bytes = Vec::new();
    loop {
        let (frame, repaint, bell) = {
            let mut slot = shared.lock();
            while !slot.has_work() && !slot.closed {
                slot = shared
                    .wake
                    .wait(slot)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if !slot.has_work() {
                return;
            }
            let repaint = slot.frame.is_some() && std::mem::take(&mut slot.repaint);
            (slot.frame.take(), repaint, std::mem::take(&mut slot.bell))
        };
        if repaint {
            presenter.invalidate();
        }
        bytes.clear();
        let written = frame
            .map_or(Ok(()), |f| presenter.present(&f, &mut bytes))
            .and_then(|()| {
                if bell {
                    bytes.push(0x07);
                }
                out.write_all(&bytes)
            })
            .and_then(|()| out.flush());
        if let Err(e) = written {
            shared.lock().error = Some(e);
            return;
        }
    }
}
