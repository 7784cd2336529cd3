//! The NVRTC compile cache.
//!
//! Each kernel source is a `.cu` file beside the module that launches it,
//! embedded with `include_str!` behind the shared `prelude.cuh` (typedefs,
//! grid-stride loop, block reductions). On first use a source is compiled
//! by NVRTC to a CUBIN for the device's own architecture (`sm_XY`) and the
//! image is kept in a process-wide cache keyed by (source, architecture),
//! so several backends compile each source once. Each backend loads the
//! image into its context once (a `OnceLock` per source) and caches the
//! functions it looks up.
//!
//! Why CUBIN and not PTX: the driver JIT-compiles PTX only when its PTX ISA
//! is not newer than the driver, so PTX from an NVRTC newer than the driver
//! fails to load; machine code from any NVRTC of the driver's major version
//! loads (CUDA minor-version compatibility).
//!
//! Kernels are compiled with `--fmad=false` so that `a * b + c` rounds as
//! on the CPU (no contraction into fused multiply-adds), and with exact
//! division and square root (NVRTC's defaults).

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{CudaContext, CudaFunction, CudaModule};
use cudarc::nvrtc::{Ptx, result as nvrtc, sys as nvrtc_sys};

use crate::CudaError;

const PRELUDE: &str = include_str!("prelude.cuh");

/// One `.cu` file (one per op family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelSource {
    Memory,
    Conv,
    Pool,
    Activation,
    Norm,
    Loss,
    Elementwise,
    Optim,
    /// The GEMM family's kernels: the f32 -> bf16/f16 operand
    /// conversions of the mixed-precision GEMMs (launched by `mixed.rs`).
    Gemm,
}

impl KernelSource {
    /// Every kernel source.
    pub const ALL: [KernelSource; 9] = [
        KernelSource::Memory,
        KernelSource::Conv,
        KernelSource::Pool,
        KernelSource::Activation,
        KernelSource::Norm,
        KernelSource::Loss,
        KernelSource::Elementwise,
        KernelSource::Optim,
        KernelSource::Gemm,
    ];

    /// The file name, e.g. `conv.cu`.
    pub fn file_name(self) -> &'static str {
        match self {
            KernelSource::Memory => "memory.cu",
            KernelSource::Conv => "conv.cu",
            KernelSource::Pool => "pool.cu",
            KernelSource::Activation => "activation.cu",
            KernelSource::Norm => "norm.cu",
            KernelSource::Loss => "loss.cu",
            KernelSource::Elementwise => "elementwise.cu",
            KernelSource::Optim => "optim.cu",
            KernelSource::Gemm => "gemm.cu",
        }
    }

    /// The file's text, without the prelude.
    pub fn body(self) -> &'static str {
        match self {
            KernelSource::Memory => include_str!("memory.cu"),
            KernelSource::Conv => include_str!("conv.cu"),
            KernelSource::Pool => include_str!("pool.cu"),
            KernelSource::Activation => include_str!("activation.cu"),
            KernelSource::Norm => include_str!("norm.cu"),
            KernelSource::Loss => include_str!("loss.cu"),
            KernelSource::Elementwise => include_str!("elementwise.cu"),
            KernelSource::Optim => include_str!("optim.cu"),
            KernelSource::Gemm => include_str!("gemm.cu"),
        }
    }

    /// The full text handed to NVRTC: the prelude, then the file.
    pub fn source(self) -> String {
        format!(
            "{PRELUDE}\n#line 1 \"{}\"\n{}",
            self.file_name(),
            self.body()
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Whether libnvrtc can be loaded (checked without panicking).
pub(crate) fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the library by name.
    unsafe { nvrtc_sys::is_culib_present() }
}

/// The version of the NVRTC library that would compile the kernels, or
/// `None` when it cannot be loaded.
pub fn nvrtc_version() -> Option<(i32, i32)> {
    if !nvrtc_present() {
        return None;
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present; the out-pointers are valid.
    let status = unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) };
    (status == nvrtc_sys::nvrtcResult::NVRTC_SUCCESS).then_some((major, minor))
}

/// Compile one source for `arch` (`sm_90`, ...) to a CUBIN image.
fn compile(src: KernelSource, arch: &str) -> Result<Vec<u8>, CudaError> {
    if !nvrtc_present() {
        return Err(CudaError::LibraryNotFound {
            library: "NVRTC",
            hint: "libnvrtc.so is not on the library path",
        });
    }
    let text = CString::new(src.source())
        .map_err(|_| CudaError::Nvrtc(format!("{} contains a NUL byte", src.file_name())))?;
    let name = CString::new(src.file_name()).expect("file names have no NUL");
    let nv = |what: &str, e: nvrtc::NvrtcError| {
        CudaError::Nvrtc(format!("{what} {} for {arch}: {e:?}", src.file_name()))
    };
    let prog = nvrtc::create_program(&text, Some(&name)).map_err(|e| nv("creating", e))?;
    let options = [
        format!("--gpu-architecture={arch}"),
        "--fmad=false".to_string(),
        "--std=c++17".to_string(),
    ];
    // SAFETY: `prog` was just created and is destroyed below, once.
    let result = unsafe { nvrtc::compile_program(prog, &options) };
    let outcome = match result {
        Ok(()) => cubin(prog).map_err(|e| nv("reading the CUBIN of", e)),
        Err(e) => Err(CudaError::Nvrtc(format!(
            "compiling {} for {arch} failed ({e:?}):\n{}",
            src.file_name(),
            log(prog)
        ))),
    };
    // SAFETY: as above.
    let _ = unsafe { nvrtc::destroy_program(prog) };
    outcome
}

fn cubin(prog: nvrtc_sys::nvrtcProgram) -> Result<Vec<u8>, nvrtc::NvrtcError> {
    let mut size = 0usize;
    // SAFETY: `prog` is a compiled program; `image` has `size` bytes.
    unsafe {
        nvrtc_sys::nvrtcGetCUBINSize(prog, &mut size).result()?;
        let mut image = vec![0u8; size];
        nvrtc_sys::nvrtcGetCUBIN(prog, image.as_mut_ptr() as *mut c_char).result()?;
        Ok(image)
    }
}

fn log(prog: nvrtc_sys::nvrtcProgram) -> String {
    // SAFETY: `prog` is a live program; the log is NUL-terminated.
    match unsafe { nvrtc::get_program_log(prog) } {
        Ok(raw) => unsafe { CStr::from_ptr(raw.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
        Err(e) => format!("(no log: {e:?})"),
    }
}

type ImageKey = (KernelSource, String);

/// Process-wide cache of compiled images.
fn images() -> &'static Mutex<HashMap<ImageKey, Arc<Vec<u8>>>> {
    static IMAGES: OnceLock<Mutex<HashMap<ImageKey, Arc<Vec<u8>>>>> = OnceLock::new();
    IMAGES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The CUBIN of `src` for `arch`, compiled on first use.
pub(crate) fn image(src: KernelSource, arch: &str) -> Result<Arc<Vec<u8>>, CudaError> {
    let key = (src, arch.to_string());
    if let Some(img) = images().lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(img.clone());
    }
    // Compile outside the lock (another thread may race; both results are equal).
    let img = Arc::new(compile(src, arch)?);
    images()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_insert(img.clone());
    Ok(img)
}

/// The CUBIN of one kernel source for `arch` (`sm_90`, ...), compiled on
/// first use (no GPU needed, only libnvrtc): its symbol table names every
/// `extern "C"` kernel of the source.
pub fn kernel_image(src: KernelSource, arch: &str) -> Result<Arc<Vec<u8>>, CudaError> {
    image(src, arch)
}

/// Compile every kernel source for `arch` (no GPU needed, only libnvrtc).
/// Returns each file name with the size of its CUBIN.
pub fn compile_all_kernels(arch: &str) -> Result<Vec<(&'static str, usize)>, CudaError> {
    KernelSource::ALL
        .iter()
        .map(|&src| image(src, arch).map(|img| (src.file_name(), img.len())))
        .collect()
}

/// A backend's loaded modules and looked-up functions.
pub(crate) struct KernelCache {
    arch: String,
    modules: [OnceLock<Arc<CudaModule>>; KernelSource::ALL.len()],
    functions: Mutex<HashMap<(KernelSource, &'static str), CudaFunction>>,
}

impl KernelCache {
    pub(crate) fn new(arch: String) -> Self {
        KernelCache {
            arch,
            modules: Default::default(),
            functions: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn arch(&self) -> &str {
        &self.arch
    }

    pub(crate) fn module(
        &self,
        ctx: &Arc<CudaContext>,
        src: KernelSource,
    ) -> cnn_core::Result<Arc<CudaModule>> {
        let slot = &self.modules[src.index()];
        if let Some(m) = slot.get() {
            return Ok(m.clone());
        }
        let img = image(src, &self.arch)?;
        let module = ctx
            .load_module(Ptx::from_binary(img.to_vec()))
            .map_err(|e| {
                CudaError::Driver(format!(
                    "loading the {} image of {}: {e:?}",
                    self.arch,
                    src.file_name()
                ))
            })?;
        Ok(slot.get_or_init(|| module).clone())
    }

    pub(crate) fn function(
        &self,
        ctx: &Arc<CudaContext>,
        src: KernelSource,
        name: &'static str,
    ) -> cnn_core::Result<CudaFunction> {
        let mut functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = functions.get(&(src, name)) {
            return Ok(f.clone());
        }
        let module = self.module(ctx, src)?;
        let f = module.load_function(name).map_err(|e| {
            CudaError::Driver(format!(
                "kernel `{name}` not found in {}: {e:?}",
                src.file_name()
            ))
        })?;
        functions.insert((src, name), f.clone());
        Ok(f)
    }
}
