//! The graph [`Ops`] on one NVIDIA GPU: our kernels (`kernels/*.cu`) and cuBLAS.
//!
//! Every op allocates its output on the stream (the driver's pool makes that cheap) and
//! enqueues its kernels; nothing waits for the GPU but [`Ops::to_host`].

use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, sys::cublasOperation_t};
use cudarc::driver::{
    CudaContext, CudaEvent, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, LaunchConfig,
    PushKernelArg,
};

use super::module::Kernels;
use super::{MixerShape, Precision, SCAN_CHUNK, cuda_available, cuda_err, grid};
use crate::error::{Error, Result};
use crate::graph::{Consumer, LinearRole, Mamba2Shape, Ops};
use crate::model::{LayerWeights, Mamba2LayerWeights};

mod mamba2;
mod states;
pub use mamba2::CudaMixer2;

/// Largest Mamba-2 state size the scan supports (a 32-step tile of B and C in 48 KiB of shared
/// memory).
const M2_STATE_MAX: usize = 128;
/// The Mamba-1 state size compiled into the kernels of a Mamba-2 model (unused).
const M1_STATE_UNUSED: usize = 16;

/// The GPU handles: stream, cuBLAS, compiled kernels. The causal backend and the graph ops
/// share them.
pub struct CudaOps {
    pub(super) stream: Arc<CudaStream>,
    pub(super) blas: CudaBlas,
    pub(super) kernels: Kernels,
    pub(super) precision: Precision,
    name: String,
    /// A one-float buffer for kernel arguments that a launch does not write.
    dummy: CudaSlice<f32>,
    /// Device time per stage, when profiling.
    profile: Option<Mutex<Profile>>,
    /// Held by every op, so calls from several threads never interleave on the stream.
    lock: Mutex<()>,
    /// State buffers handed back ([`Ops::recycle_state`]) for the next checkpoint copies.
    spare: states::Spare,
}

// SAFETY: the stream and cuBLAS handle are only used while `lock` is held: every `Ops` method
// takes it (through `guard`) before it touches them, and the helpers they call run under it.
unsafe impl Sync for CudaOps {}
unsafe impl Send for CudaOps {}

/// The operands of [`CudaOps::gemm_ex`] other than the output: device pointers of the weight
/// and the activations, their element type, and the compute type.
struct GemmInputs {
    w: u64,
    a: u64,
    input_type: cudarc::cublas::sys::cudaDataType,
    compute: cudarc::cublas::sys::cublasComputeType_t,
}

/// Device time per stage: events not yet read, and the milliseconds summed so far.
#[derive(Default)]
struct Profile {
    pending: Vec<(&'static str, CudaEvent, CudaEvent)>,
    totals: Vec<(&'static str, f64)>,
}

impl Profile {
    /// Reads the pending events (waiting for the GPU to reach them) into the totals.
    fn settle(&mut self) {
        for (stage, start, end) in self.pending.drain(..) {
            let ms = start.elapsed_ms(&end).unwrap_or(0.0) as f64;
            match self.totals.iter_mut().find(|(s, _)| *s == stage) {
                Some((_, total)) => *total += ms,
                None => self.totals.push((stage, ms)),
            }
        }
    }
}

/// The op lock, held for one op; records the op's end event when profiling.
struct OpGuard<'a> {
    ops: &'a CudaOps,
    stage: &'static str,
    start: Option<CudaEvent>,
    _lock: MutexGuard<'a, ()>,
}

impl Drop for OpGuard<'_> {
    fn drop(&mut self) {
        let (Some(start), Some(profile)) = (self.start.take(), &self.ops.profile) else {
            return;
        };
        // A timing that cannot be recorded is left out of the profile; it never fails an op.
        let Ok(end) = self.ops.timing_event() else {
            return;
        };
        if end.record(&self.ops.stream).is_ok()
            && let Ok(mut p) = profile.lock()
        {
            p.pending.push((self.stage, start, end));
            if p.pending.len() >= 4096 {
                p.settle();
            }
        }
    }
}

/// Activations on the GPU, `[rows, width]`: f32, or bf16 where only a bf16 block projection
/// reads them.
pub struct CudaAct {
    data: ActData,
    rows: usize,
    width: usize,
}

enum ActData {
    F32(CudaSlice<f32>),
    /// bf16 bits.
    Bf16(CudaSlice<u16>),
}

impl CudaAct {
    fn f32(buf: CudaSlice<f32>, rows: usize, width: usize) -> Self {
        CudaAct {
            data: ActData::F32(buf),
            rows,
            width,
        }
    }
    /// What a kernel with an optional bf16 output wrote: `y16` when it had one, else `y`.
    fn written(y: CudaSlice<f32>, y16: Option<CudaSlice<u16>>, rows: usize, width: usize) -> Self {
        match y16 {
            Some(b) => CudaAct {
                data: ActData::Bf16(b),
                rows,
                width,
            },
            None => CudaAct::f32(y, rows, width),
        }
    }
    fn rows(&self) -> usize {
        self.rows
    }
    fn len(&self) -> usize {
        self.rows * self.width
    }
    /// The f32 values; an error for a bf16 projection input (a graph bug, not a user error).
    fn values(&self) -> Result<&CudaSlice<f32>> {
        match &self.data {
            ActData::F32(b) => Ok(b),
            ActData::Bf16(_) => Err(Error::Backend(
                "cuda: a bf16 projection input was used as f32".into(),
            )),
        }
    }
    fn values_mut(&mut self) -> Result<&mut CudaSlice<f32>> {
        match &mut self.data {
            ActData::F32(b) => Ok(b),
            ActData::Bf16(_) => Err(Error::Backend(
                "cuda: a bf16 projection input was used as f32".into(),
            )),
        }
    }
}

/// A projection weight on the GPU.
pub(super) enum Weight {
    F32(CudaSlice<f32>),
    /// f32 values multiplied in TF32 on the tensor cores.
    Tf32(CudaSlice<f32>),
    /// bf16 bits.
    Bf16(CudaSlice<u16>),
}

/// A projection `[out, in]` with its optional bias.
pub struct CudaLinear {
    w: Weight,
    out: usize,
    inp: usize,
    bias: Option<CudaSlice<f32>>,
}

/// One mixer's parameters on the GPU.
pub struct CudaMixer {
    e: usize,
    n: usize,
    k: usize,
    r: usize,
    conv_weight: CudaSlice<f32>,
    conv_bias: CudaSlice<f32>,
    x_proj: CudaSlice<f32>,
    dt_proj: CudaSlice<f32>,
    dt_bias: CudaSlice<f32>,
    a: CudaSlice<f32>,
    d: CudaSlice<f32>,
}

/// The carried state of one mixer for a batch of sequences, stacked sequence by sequence.
pub struct CudaMixerState {
    conv: CudaSlice<f32>,
    ssm: CudaSlice<f32>,
    batch: usize,
}

impl Clone for CudaMixerState {
    fn clone(&self) -> Self {
        CudaMixerState {
            conv: self
                .conv
                .try_clone()
                .expect("GPU out of memory copying a state"),
            ssm: self
                .ssm
                .try_clone()
                .expect("GPU out of memory copying a state"),
            batch: self.batch,
        }
    }
}

fn shape_err(what: &str) -> Error {
    Error::Backend(format!("cuda: {what}: operands have mismatched shapes"))
}

/// Keeps freed memory in the device's pool instead of returning it to the driver at every
/// synchronisation, so the per-op allocations of the graph are reused stripe after stripe.
fn keep_pool_memory(ctx: &Arc<CudaContext>) {
    use cudarc::driver::sys;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let mut threshold: u64 = u64::MAX;
    // SAFETY: plain driver calls on a live context's device; a failure only costs speed.
    unsafe {
        if sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device()) == sys::CUresult::CUDA_SUCCESS
        {
            let _ = sys::cuMemPoolSetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                &mut threshold as *mut u64 as *mut std::ffi::c_void,
            );
        }
    }
}

impl CudaOps {
    /// Opens GPU `ordinal` for the causal model `config` (Mamba-1 or Mamba-2), with the kernels
    /// compiled for its state size, conv width and step-size rank.
    pub fn for_config(
        ordinal: usize,
        precision: Precision,
        config: &crate::model::MambaConfig,
    ) -> Result<Self> {
        let shape = match &config.mamba2 {
            None => {
                MixerShape::mamba1(config.state_size, config.conv_kernel, config.time_step_rank)
            }
            Some(_) => MixerShape {
                d_state: M1_STATE_UNUSED,
                d_conv: config.conv_kernel,
                dt_rank: 1,
                m2_state: config.state_size,
            },
        };
        Self::new(ordinal, precision, shape)
    }

    /// Opens GPU `ordinal` and compiles the kernels for a model's mixer `shape`, checked
    /// against the kernels' limits.
    pub fn new(ordinal: usize, precision: Precision, shape: MixerShape) -> Result<Self> {
        let MixerShape {
            d_state,
            d_conv,
            dt_rank,
            m2_state,
        } = shape;
        let count = cuda_available().map_err(Error::Backend)?;
        if ordinal >= count {
            return Err(Error::Backend(format!(
                "cuda:{ordinal} does not exist: {count} GPU(s) found"
            )));
        }
        if d_state > 64 || d_conv > 16 || dt_rank > 256 {
            return Err(Error::Backend(format!(
                "the CUDA kernels keep d_state (up to 64), d_conv (up to 16) and dt_rank (up to \
                 256) in registers and shared memory; the model has {d_state}, {d_conv} and \
                 {dt_rank}"
            )));
        }
        if m2_state > M2_STATE_MAX {
            return Err(Error::Backend(format!(
                "the CUDA Mamba-2 scan stages d_state (up to {M2_STATE_MAX}) in shared memory; \
                 the model has {m2_state}"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(cuda_err("cannot open the GPU"))?;
        // SAFETY: everything runs on the one default stream, in order, so buffers need no
        // cross-stream events.
        unsafe { ctx.disable_event_tracking() };
        keep_pool_memory(&ctx);
        let gpu = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone())
            .map_err(|e| Error::Backend(format!("cannot start cuBLAS: {e}")))?;
        let kernels = Kernels::load(&ctx, shape)?;
        let p = precision.name();
        let dummy = stream
            .alloc_zeros::<f32>(1)
            .map_err(cuda_err("allocating GPU memory"))?;
        Ok(CudaOps {
            name: format!("cuda:{ordinal} ({gpu}, {p})"),
            dummy,
            profile: None,
            stream,
            blas,
            kernels,
            precision,
            lock: Mutex::new(()),
            spare: Default::default(),
        })
    }

    /// Free and total GPU memory, bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        self.stream
            .context()
            .mem_get_info()
            .map_err(cuda_err("reading GPU memory"))
    }

    /// Takes the op lock for one op of `stage`; with profiling on, the op's device time is
    /// recorded between two events when the guard drops.
    fn guard(&self, stage: &'static str) -> Result<OpGuard<'_>> {
        let lock = self
            .lock
            .lock()
            .map_err(|_| Error::Backend("a previous GPU call panicked".into()))?;
        let start = match &self.profile {
            Some(_) => {
                let event = self.timing_event()?;
                event
                    .record(&self.stream)
                    .map_err(cuda_err("recording an event"))?;
                Some(event)
            }
            None => None,
        };
        Ok(OpGuard {
            ops: self,
            stage,
            start,
            _lock: lock,
        })
    }

    fn timing_event(&self) -> Result<CudaEvent> {
        self.stream
            .context()
            .new_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(cuda_err("creating an event"))
    }

    /// A recorded timing event when profiling.
    fn mark(&self) -> Option<CudaEvent> {
        self.profile.as_ref()?;
        let event = self.timing_event().ok()?;
        event.record(&self.stream).ok()?;
        Some(event)
    }

    /// Times the part of an op since the last `sub_stage` call (or `from`) as `stage`
    /// (named `op/part`, reported beside the ops rather than added to them).
    fn sub_stage(&self, stage: &'static str, from: &mut Option<CudaEvent>) {
        let (Some(start), Some(end), Some(profile)) = (from.take(), self.mark(), &self.profile)
        else {
            return;
        };
        if let Ok(mut p) = profile.lock() {
            p.pending.push((stage, start, end));
        }
        *from = self.mark();
    }

    /// Turns on per-op device timing (CUDA events around every op); see [`Ops::profile`].
    pub fn profiled(mut self) -> Self {
        self.profile = Some(Mutex::new(Profile::default()));
        self
    }

    /// Forgets the device time recorded so far (after a warm-up pass), waiting for it first.
    pub fn clear_profile(&self) {
        if let Some(profile) = &self.profile
            && let Ok(mut p) = profile.lock()
        {
            p.settle();
            p.totals.clear();
        }
    }

    /// Uploads f32 values.
    pub(super) fn upload(&self, v: &[f32]) -> Result<CudaSlice<f32>> {
        self.stream
            .clone_htod(v)
            .map_err(cuda_err("uploading weights"))
    }

    /// A projection weight at the precision `role` gets.
    pub(super) fn upload_weight(&self, v: &[f32], role: LinearRole) -> Result<Weight> {
        Ok(match (self.precision, role) {
            (Precision::Bf16, LinearRole::Block) => {
                let bits: Vec<u16> = v
                    .iter()
                    .map(|x| half::bf16::from_f32(*x).to_bits())
                    .collect();
                Weight::Bf16(
                    self.stream
                        .clone_htod(&bits)
                        .map_err(cuda_err("uploading weights"))?,
                )
            }
            (Precision::Tf32, LinearRole::Block) => Weight::Tf32(self.upload(v)?),
            _ => Weight::F32(self.upload(v)?),
        })
    }

    /// `dst[m, n] = src[m, k] · w[n, k]ᵀ (+ beta · dst)` in f32 with TF32 tensor-core products.
    #[allow(clippy::too_many_arguments)]
    fn linear_tf32(
        &self,
        m: usize,
        n: usize,
        k: usize,
        src: &CudaSlice<f32>,
        w: &CudaSlice<f32>,
        dst: &mut CudaSlice<f32>,
        beta: f32,
    ) -> Result<()> {
        use cudarc::cublas::sys::{cublasComputeType_t, cudaDataType};
        let (w_ptr, _w) = w.device_ptr(&self.stream);
        let (a_ptr, _a) = src.device_ptr(&self.stream);
        let (c_ptr, _c) = dst.device_ptr_mut(&self.stream);
        let inputs = GemmInputs {
            w: w_ptr,
            a: a_ptr,
            input_type: cudaDataType::CUDA_R_32F,
            compute: cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32,
        };
        // SAFETY: f32 weight [n, k], activations [m, k] and output [m, n], as allocated.
        unsafe { self.gemm_ex(m, n, k, inputs, c_ptr, beta) }
    }

    /// cuBLAS `dstᵀ = beta · dstᵀ + w · aᵀ`: weight `[n, k]`, activations `[m, k]` (both of
    /// `inputs.input_type`), f32 output `[m, n]` at `c`, row-major.
    ///
    /// # Safety
    /// The pointers must be live device buffers of those shapes and types on this stream.
    unsafe fn gemm_ex(
        &self,
        m: usize,
        n: usize,
        k: usize,
        inputs: GemmInputs,
        c: u64,
        beta: f32,
    ) -> Result<()> {
        use cudarc::cublas::sys::{cublasGemmAlgo_t, cudaDataType};
        let alpha = 1.0f32;
        // SAFETY: the caller vouches for the buffers; alpha and beta are host f32, as the f32
        // compute types need.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *self.blas.handle(),
                cublasOperation_t::CUBLAS_OP_T,
                cublasOperation_t::CUBLAS_OP_N,
                n as i32,
                m as i32,
                k as i32,
                &alpha as *const f32 as *const std::ffi::c_void,
                inputs.w as *const std::ffi::c_void,
                inputs.input_type,
                k as i32,
                inputs.a as *const std::ffi::c_void,
                inputs.input_type,
                k as i32,
                &beta as *const f32 as *const std::ffi::c_void,
                c as *mut std::ffi::c_void,
                cudaDataType::CUDA_R_32F,
                n as i32,
                inputs.compute,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| Error::Backend(format!("cuBLAS gemm failed: {e}")))
    }

    /// With `wanted`, `n` uninitialised bf16 values that the caller's kernel writes in place of
    /// its f32 output (see [`Self::out16_ptr`]); else `None`.
    pub(super) fn alloc_out16(&self, wanted: bool, n: usize) -> Result<Option<CudaSlice<u16>>> {
        if !wanted {
            return Ok(None);
        }
        // SAFETY: the caller's kernel writes every value before anything reads them.
        unsafe { self.stream.alloc::<u16>(n.max(1)) }
            .map(Some)
            .map_err(cuda_err("allocating GPU memory"))
    }

    /// The device address of an optional bf16 output for a kernel argument: null without one.
    pub(super) fn out16_ptr(&self, out16: &mut Option<CudaSlice<u16>>) -> u64 {
        match out16 {
            Some(b) => b.device_ptr_mut(&self.stream).0,
            None => 0,
        }
    }

    /// `n` uninitialised floats, every one of which the caller's kernels write.
    fn alloc(&self, n: usize) -> Result<CudaSlice<f32>> {
        // SAFETY: callers write every element before anything reads it.
        unsafe { self.stream.alloc::<f32>(n.max(1)) }.map_err(cuda_err("allocating GPU memory"))
    }

    /// `dst[m, n] = src[m, k] · w[n, k]ᵀ (+ dst)`, row-major, in f32 via column-major cuBLAS:
    /// `dstᵀ = w · srcᵀ`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn linear<A, C>(
        &self,
        m: usize,
        n: usize,
        k: usize,
        src: &A,
        src_stride: usize,
        w: &CudaSlice<f32>,
        dst: &mut C,
        accumulate: bool,
    ) -> Result<()>
    where
        A: DevicePtr<f32>,
        C: DevicePtrMut<f32>,
    {
        let cfg = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_T,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: n as i32,
            n: m as i32,
            k: k as i32,
            alpha: 1.0f32,
            lda: k as i32,
            ldb: src_stride as i32,
            beta: if accumulate { 1.0 } else { 0.0 },
            ldc: n as i32,
        };
        // SAFETY: the callers allocated the buffers for these shapes.
        unsafe { self.blas.gemm(cfg, w, src, dst) }
            .map_err(|e| Error::Backend(format!("cuBLAS gemm failed: {e}")))
    }

    /// cuBLAS `dstᵀ = beta · dstᵀ + w · act16ᵀ` with bf16 inputs and f32 accumulation.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn gemm_bf16<C>(
        &self,
        m: usize,
        n: usize,
        k: usize,
        w: &CudaSlice<u16>,
        act16: &CudaSlice<u16>,
        dst: &mut C,
        beta: f32,
    ) -> Result<()>
    where
        C: DevicePtrMut<f32>,
    {
        use cudarc::cublas::sys::{cublasComputeType_t, cudaDataType};
        let (w_ptr, _w) = w.device_ptr(&self.stream);
        let (a_ptr, _a) = act16.device_ptr(&self.stream);
        let (c_ptr, _c) = dst.device_ptr_mut(&self.stream);
        let inputs = GemmInputs {
            w: w_ptr,
            a: a_ptr,
            input_type: cudaDataType::CUDA_R_16BF,
            compute: cublasComputeType_t::CUBLAS_COMPUTE_32F,
        };
        // SAFETY: bf16 weight [n, k] and activations [m, k], f32 output [m, n], as allocated.
        unsafe { self.gemm_ex(m, n, k, inputs, c_ptr, beta) }
    }

    /// `x[rows, width] += bias` on every row.
    pub(super) fn add_bias(
        &self,
        x: &mut CudaSlice<f32>,
        bias: &CudaSlice<f32>,
        rows: usize,
        width: usize,
    ) -> Result<()> {
        // x[rows, width] += ones[rows] ⊗ bias[width], as a rank-1 gemm. Only models with
        // use_bias = true reach this, so the small upload of `ones` per call is acceptable.
        let ones = vec![1.0f32; rows];
        let ones = self
            .stream
            .clone_htod(&ones)
            .map_err(cuda_err("uploading"))?;
        let cfg = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_N,
            transb: cublasOperation_t::CUBLAS_OP_T,
            m: width as i32,
            n: rows as i32,
            k: 1,
            alpha: 1.0f32,
            lda: width as i32,
            ldb: rows as i32,
            beta: 1.0,
            ldc: width as i32,
        };
        // SAFETY: bias has `width` values, ones `rows`, x `rows * width`.
        unsafe { self.blas.gemm(cfg, bias, &ones, x) }
            .map_err(|e| Error::Backend(format!("cuBLAS gemm failed: {e}")))
    }

    /// `dst (+)= x · wᵀ (+ bias)`: an f32 or bf16 input with an f32 or bf16 weight (an f32
    /// input of a bf16 weight is rounded to bf16 first).
    fn project(
        &self,
        x: &CudaAct,
        w: &CudaLinear,
        dst: &mut CudaAct,
        accumulate: bool,
    ) -> Result<()> {
        let m = x.rows();
        if x.width != w.inp || dst.width != w.out || dst.rows() != m {
            return Err(shape_err("linear"));
        }
        let beta = if accumulate { 1.0 } else { 0.0 };
        let out = dst.values_mut()?;
        match (&w.w, &x.data) {
            (Weight::F32(w32), ActData::F32(x32)) => {
                self.linear(m, w.out, w.inp, x32, w.inp, w32, out, accumulate)?
            }
            (Weight::Bf16(w16), ActData::Bf16(x16)) => {
                self.gemm_bf16(m, w.out, w.inp, w16, x16, out, beta)?
            }
            (Weight::Bf16(w16), ActData::F32(x32)) => {
                let count = x.len();
                // SAFETY: to_bf16 writes all `count` values.
                let mut x16 = unsafe { self.stream.alloc::<u16>(count.max(1)) }
                    .map_err(cuda_err("allocating GPU memory"))?;
                let n = count as i64;
                // SAFETY: x holds `count` floats, x16 `count` halves.
                unsafe {
                    self.stream
                        .launch_builder(&self.kernels.to_bf16)
                        .arg(x32)
                        .arg(&mut x16)
                        .arg(&n)
                        .launch(grid(count))
                        .map_err(cuda_err("kernel launch failed"))?;
                }
                self.gemm_bf16(m, w.out, w.inp, w16, &x16, out, beta)?
            }
            (Weight::Tf32(w32), ActData::F32(x32)) => {
                self.linear_tf32(m, w.out, w.inp, x32, w32, out, beta)?
            }
            (Weight::F32(_) | Weight::Tf32(_), ActData::Bf16(_)) => {
                return Err(Error::Backend(
                    "cuda: a bf16 input reached an f32 projection".into(),
                ));
            }
        }
        if let Some(b) = &w.bias {
            self.add_bias(out, b, m, w.out)?;
        }
        Ok(())
    }

    /// `x` with sequences and/or channels reversed (no lock: callers hold it).
    fn flip_unlocked(&self, x: &CudaAct, batch: usize, seq: bool, ch: bool) -> Result<CudaAct> {
        if batch == 0 || !x.rows().is_multiple_of(batch) {
            return Err(shape_err("flip"));
        }
        let count = x.len();
        let mut out = self.alloc(count)?;
        let (len, batch_i, width) = ((x.rows() / batch) as i32, batch as i32, x.width as i32);
        let (fs, fc) = (i32::from(seq), i32::from(ch));
        // SAFETY: x and out hold batch * len * width floats.
        unsafe {
            self.stream
                .launch_builder(&self.kernels.flip_rows)
                .arg(x.values()?)
                .arg(&mut out)
                .arg(&len)
                .arg(&batch_i)
                .arg(&width)
                .arg(&fs)
                .arg(&fc)
                .launch(grid(count))
                .map_err(cuda_err("kernel launch failed"))?;
        }
        Ok(CudaAct::f32(out, x.rows, x.width))
    }

    /// Copies `cols` columns from `src` (from column `src_c0`) into `dst` (from `dst_c0`).
    fn copy_cols(
        &self,
        src: &CudaAct,
        src_c0: usize,
        dst: &mut CudaAct,
        dst_c0: usize,
        cols: usize,
    ) -> Result<()> {
        let rows = src.rows();
        let (sw, sc, dw, dc, c) = (
            src.width as i32,
            src_c0 as i32,
            dst.width as i32,
            dst_c0 as i32,
            cols as i32,
        );
        let rows_i = rows as i64;
        let from = src.values()?;
        let to = dst.values_mut()?;
        // SAFETY: both hold `rows` rows of their widths; the column ranges fit them.
        unsafe {
            self.stream
                .launch_builder(&self.kernels.copy_cols)
                .arg(from)
                .arg(&sw)
                .arg(&sc)
                .arg(to)
                .arg(&dw)
                .arg(&dc)
                .arg(&c)
                .arg(&rows_i)
                .launch(grid(rows * cols))
                .map_err(cuda_err("kernel launch failed"))?;
        }
        Ok(())
    }

    fn combine(&self, x: &mut CudaAct, y: &CudaAct, mode: i32) -> Result<()> {
        if x.len() != y.len() {
            return Err(shape_err("combine"));
        }
        let _g = self.guard("add_mul")?;
        let n = x.len() as i64;
        let other = y.values()?;
        let target = x.values_mut()?;
        // SAFETY: x and y hold n floats each.
        unsafe {
            self.stream
                .launch_builder(&self.kernels.combine)
                .arg(target)
                .arg(other)
                .arg(&n)
                .arg(&mode)
                .launch(grid(n as usize))
                .map_err(cuda_err("kernel launch failed"))?;
        }
        Ok(())
    }

    /// The mixer of the sequences `state` holds, forward in time (no lock: callers hold it).
    /// `y` is bf16 with `bf16_out` (the input of a bf16 `out_proj`). With checkpoints `at`
    /// (batch 1, multiples of [`SCAN_CHUNK`]), also the states before those rows.
    fn mixer_forward(
        &self,
        w: &CudaMixer,
        xz: &CudaAct,
        state: &mut CudaMixerState,
        bf16_out: bool,
        at: &[usize],
    ) -> Result<(CudaAct, Vec<CudaMixerState>)> {
        let (e, n, k, r) = (w.e, w.n, w.k, w.r);
        let batch = state.batch;
        let rows = xz.rows();
        let len = rows / batch;
        let xw = r + 2 * n;
        let chunks = len.div_ceil(SCAN_CHUNK);
        let (len_i, batch_i, e_i, k_i) = (len as i32, batch as i32, e as i32, k as i32);
        let in_stride = (2 * e) as i32;
        let launch_err = cuda_err("kernel launch failed");
        let xz_buf = xz.values()?;
        let mut u = self.alloc(rows * e)?;
        let mut conv_next = self.alloc(batch * (k - 1).max(1) * e)?;
        let mut copies = self.checkpoint_states(w, at.len())?;
        let mut since = self.mark();
        // SAFETY (all launches): arguments match the kernels' signatures in kernels/*.cu and
        // every buffer holds at least the elements the launch grid indexes.
        unsafe {
            self.stream
                .launch_builder(&self.kernels.conv)
                .arg(xz_buf)
                .arg(&in_stride)
                .arg(&len_i)
                .arg(&batch_i)
                .arg(&e_i)
                .arg(&state.conv)
                .arg(&w.conv_weight)
                .arg(&w.conv_bias)
                .arg(&mut u)
                .launch(grid(batch * len.div_ceil(super::CONV_STEPS) * e))
                .map_err(&launch_err)?;
            self.stream
                .launch_builder(&self.kernels.conv_state_next)
                .arg(xz_buf)
                .arg(&in_stride)
                .arg(&len_i)
                .arg(&batch_i)
                .arg(&e_i)
                .arg(&k_i)
                .arg(&state.conv)
                .arg(&mut conv_next)
                .launch(grid(batch * (k - 1) * e))
                .map_err(&launch_err)?;
        }
        // The conv state before row p is the state after the first p rows.
        self.checkpoint_conv(xz_buf, in_stride, at, e, k, &state.conv, &mut copies)?;
        if k > 1 {
            state.conv = conv_next;
        }
        self.sub_stage("mixer/conv", &mut since);
        let mut x_dbl = self.alloc(rows * xw)?;
        // x_proj is an f32 product of a [rows, e] input with a [r + 2n, e] weight, bound by the
        // f32 cores; in bf16 mode, where the block projections round to bf16 anyway, it runs
        // on the tensor cores in TF32 (f32 in memory; measured: the bf16 error is unchanged).
        if self.precision == Precision::Bf16 {
            self.linear_tf32(rows, xw, e, &u, &w.x_proj, &mut x_dbl, 0.0)?;
        } else {
            self.linear(rows, xw, e, &u, e, &w.x_proj, &mut x_dbl, false)?;
        }
        self.sub_stage("mixer/x_proj", &mut since);
        let en = e * n;
        let mut h_end = self.alloc(batch * chunks * en)?;
        let mut decay = self.alloc(batch * chunks * en)?;
        let mut h_start = self.alloc(batch * chunks * en)?;
        let (xs, z_stride) = (xw as i32, (2 * e) as i32);
        let (chunk_i, chunks_i, en_i) = (SCAN_CHUNK as i32, chunks as i32, en as i32);
        let mut dt = self.alloc(rows * e)?;
        let scan_grid = LaunchConfig {
            grid_dim: ((e as u32).div_ceil(128), chunks as u32, batch as u32),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: as above.
        unsafe {
            self.stream
                .launch_builder(&self.kernels.scan_local)
                .arg(&u)
                .arg(&x_dbl)
                .arg(&xs)
                .arg(&w.dt_proj)
                .arg(&w.dt_bias)
                .arg(&w.a)
                .arg(&len_i)
                .arg(&e_i)
                .arg(&chunk_i)
                .arg(&mut h_end)
                .arg(&mut decay)
                .arg(&mut dt)
                .launch(scan_grid)
                .map_err(&launch_err)?;
        }
        self.sub_stage("mixer/scan_local", &mut since);
        // SAFETY: as above.
        unsafe {
            self.stream
                .launch_builder(&self.kernels.scan_carry)
                .arg(&mut state.ssm)
                .arg(&h_end)
                .arg(&decay)
                .arg(&mut h_start)
                .arg(&chunks_i)
                .arg(&en_i)
                .arg(&batch_i)
                .launch(grid(batch * en))
                .map_err(&launch_err)?;
        }
        self.sub_stage("mixer/scan_carry", &mut since);
        // The SSM state before row p (a chunk boundary) is chunk p / SCAN_CHUNK's start.
        self.checkpoint_ssm(&h_start, at, en, &mut copies)?;
        let z = xz_buf.slice(e..);
        let mut y = self.alloc(if bf16_out { 1 } else { rows * e })?;
        let mut y16 = self.alloc_out16(bf16_out, rows * e)?;
        {
            let y16_ptr = self.out16_ptr(&mut y16);
            // SAFETY: as above; y16_ptr is null or a buffer of rows * e halves.
            unsafe {
                self.stream
                    .launch_builder(&self.kernels.scan_output)
                    .arg(&u)
                    .arg(&x_dbl)
                    .arg(&xs)
                    .arg(&dt)
                    .arg(&w.a)
                    .arg(&w.d)
                    .arg(&z)
                    .arg(&z_stride)
                    .arg(&len_i)
                    .arg(&e_i)
                    .arg(&chunk_i)
                    .arg(&h_start)
                    .arg(&mut y)
                    .arg(&y16_ptr)
                    .launch(scan_grid)
                    .map_err(&launch_err)?;
            }
        }
        self.sub_stage("mixer/scan_output", &mut since);
        Ok((CudaAct::written(y, y16, rows, e), copies))
    }

    /// A zeroed state of `batch` sequences.
    fn zero_state(&self, w: &CudaMixer, batch: usize) -> Result<CudaMixerState> {
        let z = |n: usize| {
            self.stream
                .alloc_zeros::<f32>(n.max(1))
                .map_err(cuda_err("allocating state"))
        };
        Ok(CudaMixerState {
            conv: z(batch * (w.k - 1).max(1) * w.e)?,
            ssm: z(batch * w.e * w.n)?,
            batch,
        })
    }
}

impl Ops for CudaOps {
    type Act = CudaAct;
    type Mixer = CudaMixer;
    type Mixer2 = CudaMixer2;
    type Linear = CudaLinear;
    type Vector = CudaSlice<f32>;
    type MixerState = CudaMixerState;

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn profile(&self) -> Option<Vec<(&'static str, f64)>> {
        let profile = self.profile.as_ref()?;
        let mut p = profile.lock().ok()?;
        p.settle();
        let mut totals = p.totals.clone();
        totals.sort_by(|a, b| b.1.total_cmp(&a.1));
        Some(totals)
    }

    fn prepare_mixer(&self, w: &LayerWeights) -> Result<CudaMixer> {
        let e = w.d.len();
        let zeros = vec![0.0; e];
        let a: Vec<f32> = w.a_log.iter().map(|v| -v.exp()).collect();
        let (n, k, r) = (
            w.a_log.len() / e.max(1),
            w.conv_weight.len() / e.max(1),
            w.dt_proj.len() / e.max(1),
        );
        let _g = self.guard("upload")?;
        // The step size goes through softplus and exp: x_proj and dt_proj weights stay f32 at
        // either precision (in bf16 mode x_proj multiplies in TF32, see `mixer_forward`).
        Ok(CudaMixer {
            e,
            n,
            k,
            r,
            conv_weight: self.upload(&w.conv_weight)?,
            conv_bias: self.upload(w.conv_bias.as_deref().unwrap_or(&zeros))?,
            x_proj: self.upload(&w.x_proj)?,
            dt_proj: self.upload(&w.dt_proj)?,
            dt_bias: self.upload(&w.dt_bias)?,
            a: self.upload(&a)?,
            d: self.upload(&w.d)?,
        })
    }

    fn prepare_mixer2(&self, w: &Mamba2LayerWeights, shape: Mamba2Shape) -> Result<CudaMixer2> {
        self.upload_mixer2(w, shape)
    }

    fn new_mixer2_state(&self, w: &CudaMixer2, batch: usize) -> Result<CudaMixerState> {
        let _g = self.guard("state")?;
        self.zero_state2(w, batch)
    }

    fn mixer2(
        &self,
        w: &CudaMixer2,
        zxbcdt: &CudaAct,
        state: &mut CudaMixerState,
        reverse: bool,
    ) -> Result<CudaAct> {
        let batch = state.batch;
        let width = w.shape.in_width();
        if zxbcdt.width != width || batch == 0 || !zxbcdt.rows().is_multiple_of(batch) {
            return Err(shape_err("mixer2"));
        }
        let _g = self.guard("mixer2")?;
        let rows = zxbcdt.rows();
        if reverse {
            let flipped = self.flip_unlocked(zxbcdt, batch, true, false)?;
            let y = self.mixer2_forward(w, &flipped.values()?.slice(..), rows, state, false)?;
            self.flip_unlocked(&y, batch, true, false)
        } else {
            let bf16 = self.precision == Precision::Bf16;
            self.mixer2_forward(w, &zxbcdt.values()?.slice(..), rows, state, bf16)
        }
    }

    fn mixer2_checkpoints(
        &self,
        w: &CudaMixer2,
        zxbcdt: &CudaAct,
        state: &mut CudaMixerState,
        at: &[usize],
    ) -> Result<(CudaAct, Vec<CudaMixerState>)> {
        let _g = self.guard("mixer2")?;
        self.mixer2_pieces(w, zxbcdt, state, at)
    }

    fn prepare_linear(
        &self,
        weight: &[f32],
        out: usize,
        bias: Option<&[f32]>,
        role: LinearRole,
    ) -> Result<CudaLinear> {
        let _g = self.guard("upload")?;
        Ok(CudaLinear {
            w: self.upload_weight(weight, role)?,
            out,
            inp: weight.len() / out.max(1),
            bias: bias.map(|b| self.upload(b)).transpose()?,
        })
    }

    fn prepare_vector(&self, v: &[f32]) -> Result<CudaSlice<f32>> {
        let _g = self.guard("upload")?;
        self.upload(v)
    }

    fn new_mixer_state(&self, w: &CudaMixer, batch: usize) -> Result<CudaMixerState> {
        let _g = self.guard("state")?;
        self.zero_state(w, batch)
    }

    fn embed(&self, table: &CudaLinear, tokens: &[u32]) -> Result<CudaAct> {
        let Weight::F32(t) = &table.w else {
            return Err(Error::Backend("an embedding table must be f32".into()));
        };
        let _g = self.guard("embed")?;
        let d = table.inp;
        let ids = self
            .stream
            .clone_htod(tokens)
            .map_err(cuda_err("uploading tokens"))?;
        let mut out = self.alloc(tokens.len() * d)?;
        let (len_i, d_i) = (tokens.len() as i32, d as i32);
        // SAFETY: ids holds len tokens (checked against the vocabulary by the graph), out len * d.
        unsafe {
            self.stream
                .launch_builder(&self.kernels.embed)
                .arg(&ids)
                .arg(t)
                .arg(&mut out)
                .arg(&len_i)
                .arg(&d_i)
                .launch(grid(tokens.len() * d))
                .map_err(cuda_err("kernel launch failed"))?;
        }
        Ok(CudaAct::f32(out, tokens.len(), d))
    }

    fn rms_norm(
        &self,
        x: &CudaAct,
        weight: &CudaSlice<f32>,
        eps: f32,
        consumer: Consumer,
    ) -> Result<CudaAct> {
        if weight.len() != x.width {
            return Err(shape_err("rms_norm"));
        }
        let _g = self.guard("rms_norm")?;
        let bf16 = consumer == Consumer::BlockProjection && self.precision == Precision::Bf16;
        let count = x.len();
        let (mut out, mut out16) = if bf16 {
            // SAFETY: the kernel writes all `count` halves.
            let half = unsafe { self.stream.alloc::<u16>(count.max(1)) }
                .map_err(cuda_err("allocating GPU memory"))?;
            (None, Some(half))
        } else {
            (Some(self.alloc(count)?), None)
        };
        {
            let out16_ptr: u64 = match &mut out16 {
                Some(b) => b.device_ptr_mut(&self.stream).0,
                None => 0,
            };
            let d_i = x.width as i32;
            let mut launch = self.stream.launch_builder(&self.kernels.rms_norm);
            launch.arg(x.values()?).arg(weight);
            // The kernel writes either `out` (rows * width floats) or, given out16_ptr, that
            // many halves there instead; the dummy stands in for the f32 output it skips.
            match &mut out {
                Some(b) => launch.arg(b),
                None => launch.arg(&self.dummy),
            };
            launch.arg(&out16_ptr).arg(&d_i).arg(&eps);
            // SAFETY: one block per row of `width` floats; the outputs are sized as above.
            unsafe {
                launch
                    .launch(LaunchConfig {
                        grid_dim: (x.rows() as u32, 1, 1),
                        block_dim: (128, 1, 1),
                        shared_mem_bytes: 0,
                    })
                    .map_err(cuda_err("kernel launch failed"))?;
            }
        }
        let data = match (out, out16) {
            (_, Some(half)) => ActData::Bf16(half),
            (Some(full), None) => ActData::F32(full),
            (None, None) => unreachable!("one output is allocated"),
        };
        Ok(CudaAct {
            data,
            rows: x.rows,
            width: x.width,
        })
    }

    fn linear(&self, x: &CudaAct, w: &CudaLinear) -> Result<CudaAct> {
        let _g = self.guard("linear")?;
        let mut out = CudaAct::f32(self.alloc(x.rows() * w.out)?, x.rows(), w.out);
        self.project(x, w, &mut out, false)?;
        Ok(out)
    }

    fn linear_add(&self, x: &CudaAct, w: &CudaLinear, acc: &mut CudaAct) -> Result<()> {
        let _g = self.guard("linear_add")?;
        self.project(x, w, acc, true)
    }

    fn mixer(
        &self,
        w: &CudaMixer,
        xz: &CudaAct,
        state: &mut CudaMixerState,
        reverse: bool,
    ) -> Result<CudaAct> {
        let batch = state.batch;
        if xz.width != 2 * w.e || batch == 0 || !xz.rows().is_multiple_of(batch) {
            return Err(shape_err("mixer"));
        }
        let _g = self.guard("mixer")?;
        if reverse {
            let flipped = self.flip_unlocked(xz, batch, true, false)?;
            let (y, _) = self.mixer_forward(w, &flipped, state, false, &[])?;
            self.flip_unlocked(&y, batch, true, false)
        } else {
            let bf16 = self.precision == Precision::Bf16;
            Ok(self.mixer_forward(w, xz, state, bf16, &[])?.0)
        }
    }

    fn checkpoint_stride(&self) -> usize {
        SCAN_CHUNK
    }

    fn mixer_checkpoints(
        &self,
        w: &CudaMixer,
        xz: &CudaAct,
        state: &mut CudaMixerState,
        at: &[usize],
    ) -> Result<(CudaAct, Vec<CudaMixerState>)> {
        if xz.width != 2 * w.e || state.batch != 1 {
            return Err(shape_err("mixer_checkpoints"));
        }
        let _g = self.guard("mixer")?;
        let bf16 = self.precision == Precision::Bf16;
        self.mixer_forward(w, xz, state, bf16, at)
    }

    fn stack_states(&self, parts: &[&CudaMixerState]) -> Result<CudaMixerState> {
        let _g = self.guard("state")?;
        let total = |f: fn(&CudaMixerState) -> usize| parts.iter().map(|p| f(p)).sum::<usize>();
        let (nc, ns) = (total(|p| p.conv.len()), total(|p| p.ssm.len()));
        let (mut conv, mut ssm) = (self.alloc(nc)?, self.alloc(ns)?);
        let batch = parts.iter().map(|p| p.batch).sum();
        let same = |f: fn(&CudaMixerState) -> usize| parts.iter().all(|p| f(p) == f(parts[0]));
        if parts.len() > 2 && same(|p| p.conv.len()) && same(|p| p.ssm.len()) {
            // Parts of one size (the snapshots of a batch of continuations): one gather each.
            self.gather_parts(parts, |p| &p.conv, &mut conv)?;
            self.gather_parts(parts, |p| &p.ssm, &mut ssm)?;
            return Ok(CudaMixerState { conv, ssm, batch });
        }
        let (mut c, mut s) = (0, 0);
        for p in parts {
            let (pc, ps) = (p.conv.len(), p.ssm.len());
            self.stream
                .memcpy_dtod(&p.conv, &mut conv.slice_mut(c..c + pc))
                .map_err(cuda_err("gathering states"))?;
            self.stream
                .memcpy_dtod(&p.ssm, &mut ssm.slice_mut(s..s + ps))
                .map_err(cuda_err("gathering states"))?;
            (c, s) = (c + pc, s + ps);
        }
        Ok(CudaMixerState { conv, ssm, batch })
    }

    fn recycle_state(&self, state: CudaMixerState) {
        self.spare.keep(state);
    }

    fn unstack_states(
        &self,
        stacked: &CudaMixerState,
        parts: &mut [&mut CudaMixerState],
    ) -> Result<()> {
        let _g = self.guard("state")?;
        let (mut c, mut s) = (0, 0);
        for p in parts.iter_mut() {
            let (pc, ps) = (p.conv.len(), p.ssm.len());
            if c + pc > stacked.conv.len() || s + ps > stacked.ssm.len() {
                return Err(shape_err("unstack_states"));
            }
            self.stream
                .memcpy_dtod(&stacked.conv.slice(c..c + pc), &mut p.conv)
                .map_err(cuda_err("scattering states"))?;
            self.stream
                .memcpy_dtod(&stacked.ssm.slice(s..s + ps), &mut p.ssm)
                .map_err(cuda_err("scattering states"))?;
            (c, s) = (c + pc, s + ps);
        }
        Ok(())
    }

    fn add(&self, x: &mut CudaAct, y: &CudaAct) -> Result<()> {
        self.combine(x, y, 0)
    }

    fn mul(&self, x: &mut CudaAct, y: &CudaAct) -> Result<()> {
        self.combine(x, y, 1)
    }

    fn flip(&self, x: &CudaAct, batch: usize, seq: bool, channels: bool) -> Result<CudaAct> {
        let _g = self.guard("layout")?;
        self.flip_unlocked(x, batch, seq, channels)
    }

    fn concat_halves(&self, a: &CudaAct, b: &CudaAct) -> Result<CudaAct> {
        if a.width != b.width || a.rows != b.rows {
            return Err(shape_err("concat_halves"));
        }
        let _g = self.guard("layout")?;
        let mut out = CudaAct::f32(self.alloc(2 * a.len())?, a.rows, 2 * a.width);
        self.copy_cols(a, 0, &mut out, 0, a.width)?;
        self.copy_cols(b, 0, &mut out, a.width, a.width)?;
        Ok(out)
    }

    fn log_softmax(&self, x: &mut CudaAct) -> Result<()> {
        let _g = self.guard("log_softmax")?;
        let rows_n = x.rows();
        let (rows, v) = (rows_n as i32, x.width as i32);
        let values = x.values_mut()?;
        // SAFETY: x holds rows * v floats.
        unsafe {
            self.stream
                .launch_builder(&self.kernels.log_softmax)
                .arg(values)
                .arg(&rows)
                .arg(&v)
                .launch(grid(rows_n))
                .map_err(cuda_err("kernel launch failed"))?;
        }
        Ok(())
    }

    fn observed(
        &self,
        logp: &CudaAct,
        tokens: &[u32],
        v: usize,
        observed: &mut Vec<f32>,
        last_row: &mut Vec<f32>,
    ) -> Result<()> {
        let len = tokens.len();
        if len == 0 || logp.rows() != len || logp.width != v {
            return Err(shape_err("observed"));
        }
        let _g = self.guard("to_host")?;
        let rows = logp.values()?;
        let n = len - 1;
        observed.resize(n, 0.0);
        if n > 0 {
            let next = self
                .stream
                .clone_htod(&tokens[1..])
                .map_err(cuda_err("uploading tokens"))?;
            let mut out = self.alloc(n)?;
            let (n_i, v_i) = (n as i64, v as i32);
            // SAFETY: rows holds len * v floats; next holds n ids below v (checked by the
            // graph against the vocabulary); out holds n floats.
            unsafe {
                self.stream
                    .launch_builder(&self.kernels.gather_observed)
                    .arg(rows)
                    .arg(&next)
                    .arg(&mut out)
                    .arg(&n_i)
                    .arg(&v_i)
                    .launch(grid(n))
                    .map_err(cuda_err("kernel launch failed"))?;
            }
            self.stream
                .memcpy_dtoh(&out.slice(..n), observed.as_mut_slice())
                .map_err(cuda_err("copying results"))?;
        }
        last_row.resize(v, 0.0);
        self.stream
            .memcpy_dtoh(&rows.slice(n * v..len * v), last_row.as_mut_slice())
            .map_err(cuda_err("copying results"))
    }

    fn to_host(&self, x: &CudaAct, out: &mut Vec<f32>) -> Result<()> {
        let _g = self.guard("to_host")?;
        out.resize(x.len(), 0.0);
        self.stream
            .memcpy_dtoh(&x.values()?.slice(..x.len()), out.as_mut_slice())
            .map_err(cuda_err("copying results"))
    }
}
