//! Gathering and copying carried states on the GPU for score-variants (kernels/state.cu):
//! the checkpoint copies of a stripe and the gathering of many snapshots into one batch, each
//! in one launch per buffer, addressed through a table of device pointers, instead of one copy
//! (and allocation) per state.

use std::collections::HashMap;
use std::sync::Mutex;

use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, PushKernelArg};

use super::{CudaMixer, CudaMixerState, CudaOps, cuda_err, grid};
use crate::error::Result;

/// Buffers of states handed back, by length, for the checkpoint copies of later stripes: a
/// dense variant set takes a checkpoint every few hundred bases, and an allocation and a free
/// per buffer of each (two per layer) cost more host time than the pass itself. They stay
/// allocated (at most as many as were alive at once) until the GPU handles are dropped; the
/// stream orders their reuse after every earlier read. Only buffers of the lengths the
/// checkpoint copies have asked for are kept (a Mamba-2 state, which they never ask for, is
/// dropped).
#[derive(Default)]
pub(super) struct Spare(Mutex<HashMap<usize, Vec<CudaSlice<f32>>>>);

impl Spare {
    /// Keeps a state's buffers, where their lengths are wanted (others are dropped).
    pub(super) fn keep(&self, state: CudaMixerState) {
        if let Ok(mut spare) = self.0.lock() {
            for buf in [state.conv, state.ssm] {
                if let Some(kept) = spare.get_mut(&buf.len()) {
                    kept.push(buf);
                }
            }
        }
    }

    /// A kept buffer of `n` floats, if there is one; marks `n` as a wanted length.
    fn take(&self, n: usize) -> Option<CudaSlice<f32>> {
        self.0.lock().ok()?.entry(n).or_default().pop()
    }
}

impl CudaOps {
    /// `n` floats, uninitialised (or holding a recycled state): callers write every one.
    fn spare_or_alloc(&self, n: usize) -> Result<CudaSlice<f32>> {
        match self.spare.take(n.max(1)) {
            Some(buf) => Ok(buf),
            None => self.alloc(n),
        }
    }

    /// The device addresses `ptrs` uploaded for a kernel (no lock: callers hold it).
    fn upload_addresses(&self, ptrs: &[u64]) -> Result<CudaSlice<u64>> {
        self.stream
            .clone_htod(ptrs)
            .map_err(cuda_err("uploading state addresses"))
    }

    /// Gathers one buffer (`which`) of every part, all of one length, into `dst` in order,
    /// with one kernel launch (no lock: callers hold it).
    pub(super) fn gather_parts(
        &self,
        parts: &[&CudaMixerState],
        which: fn(&CudaMixerState) -> &CudaSlice<f32>,
        dst: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let per = which(parts[0]).len();
        let ptrs: Vec<u64> = parts
            .iter()
            .map(|p| which(p).device_ptr(&self.stream).0)
            .collect();
        let srcs = self.upload_addresses(&ptrs)?;
        let (per_i, batch_i) = (per as i64, parts.len() as i32);
        // SAFETY: srcs holds parts.len() addresses of live buffers of `per` floats each (the
        // parts are borrowed for this call, and a buffer dropped later is freed in stream
        // order, after this launch); dst holds parts.len() * per floats and overlaps none.
        unsafe {
            self.stream
                .launch_builder(&self.kernels.gather_states)
                .arg(&srcs)
                .arg(dst)
                .arg(&per_i)
                .arg(&batch_i)
                .launch(grid(per * parts.len()))
                .map_err(cuda_err("kernel launch failed"))?;
        }
        Ok(())
    }

    /// `count` states of batch 1 for checkpoint copies, uninitialised or recycled:
    /// [`Self::checkpoint_conv`] and [`Self::checkpoint_ssm`] write every element.
    pub(super) fn checkpoint_states(
        &self,
        w: &CudaMixer,
        count: usize,
    ) -> Result<Vec<CudaMixerState>> {
        (0..count)
            .map(|_| {
                Ok(CudaMixerState {
                    conv: self.spare_or_alloc((w.k - 1).max(1) * w.e)?,
                    ssm: self.spare_or_alloc(w.e * w.n)?,
                    batch: 1,
                })
            })
            .collect()
    }

    /// Into `copies[j].conv`, the conv state before row `at[j]` of the stripe `xz` (batch 1,
    /// rows of `in_stride` floats, x in the first `e` columns) that starts from the conv
    /// state `state` (`[k - 1, e]`), all in one launch (no lock: callers hold it).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn checkpoint_conv(
        &self,
        xz: &CudaSlice<f32>,
        in_stride: i32,
        at: &[usize],
        e: usize,
        k: usize,
        state: &CudaSlice<f32>,
        copies: &mut [CudaMixerState],
    ) -> Result<()> {
        let per = (k.max(1) - 1) * e;
        if at.is_empty() || per == 0 {
            return Ok(());
        }
        let pos: Vec<i32> = at.iter().map(|&p| p as i32).collect();
        let pos = self
            .stream
            .clone_htod(&pos)
            .map_err(cuda_err("uploading checkpoints"))?;
        let ptrs: Vec<u64> = copies
            .iter_mut()
            .map(|c| c.conv.device_ptr_mut(&self.stream).0)
            .collect();
        let dsts = self.upload_addresses(&ptrs)?;
        let (count_i, e_i, k_i) = (at.len() as i32, e as i32, k as i32);
        // SAFETY: xz holds the stripe's rows (at[j] <= its row count, checked by the caller's
        // check_checkpoints), state [k - 1, e] floats, and each of the at.len() destinations
        // (live, borrowed mutably here) (k - 1) * e floats.
        unsafe {
            self.stream
                .launch_builder(&self.kernels.checkpoint_conv)
                .arg(xz)
                .arg(&in_stride)
                .arg(&pos)
                .arg(&count_i)
                .arg(&e_i)
                .arg(&k_i)
                .arg(state)
                .arg(&dsts)
                .launch(grid(per * at.len()))
                .map_err(cuda_err("kernel launch failed"))?;
        }
        Ok(())
    }

    /// Into `copies[j].ssm`, the SSM state before row `at[j]` (a multiple of the scan chunk):
    /// the start of its chunk in `h_start` (`en` floats per chunk), all in one launch (no
    /// lock: callers hold it).
    pub(super) fn checkpoint_ssm(
        &self,
        h_start: &CudaSlice<f32>,
        at: &[usize],
        en: usize,
        copies: &mut [CudaMixerState],
    ) -> Result<()> {
        if at.is_empty() || en == 0 {
            return Ok(());
        }
        let offs: Vec<i64> = at
            .iter()
            .map(|&p| (p / super::SCAN_CHUNK * en) as i64)
            .collect();
        let offs = self
            .stream
            .clone_htod(&offs)
            .map_err(cuda_err("uploading checkpoints"))?;
        let ptrs: Vec<u64> = copies
            .iter_mut()
            .map(|c| c.ssm.device_ptr_mut(&self.stream).0)
            .collect();
        let dsts = self.upload_addresses(&ptrs)?;
        let (per_i, count_i) = (en as i64, at.len() as i32);
        // SAFETY: every offset plus en lies inside h_start (one slot per chunk of the stripe);
        // each destination (live, borrowed mutably here) holds en floats.
        unsafe {
            self.stream
                .launch_builder(&self.kernels.copy_slots)
                .arg(h_start)
                .arg(&offs)
                .arg(&dsts)
                .arg(&per_i)
                .arg(&count_i)
                .launch(grid(en * at.len()))
                .map_err(cuda_err("kernel launch failed"))?;
        }
        Ok(())
    }
}
