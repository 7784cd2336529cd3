//! Fused optimizer updates (`optim.cu`): one elementwise kernel per rule,
//! the per-step scalars computed on the host exactly as cnn-cpu does, then
//! passed as kernel arguments.

use cnn_core::error::check_len;
use cnn_core::{
    AdadeltaStep, AdagradStep, AdamStep, AdamaxStep, AsgdStep, LionStep, NadamStep, OptimOps,
    RadamStep, Result, RmspropStep, RpropStep, SgdStep,
};
use cudarc::driver::{CudaSlice, DevicePtrMut};

use crate::CudaBackend;
use crate::kernels::KernelSource;
use crate::launch::grid;

use cnn_core::backend::{check_optim_state as check_state, missing_optim_state as missing};

impl CudaBackend {
    /// The device address of an optional state buffer (checked to have
    /// `len` elements), or 0 when the rule does not use it.
    fn optional_ptr(
        &self,
        op: &'static str,
        name: &'static str,
        used: bool,
        buf: Option<&mut CudaSlice<f32>>,
        len: usize,
    ) -> Result<u64> {
        if !used {
            return Ok(0);
        }
        let buf = buf.ok_or_else(|| missing(op, name))?;
        check_len(op, name, buf.len(), len)?;
        let (ptr, _record) = buf.device_ptr_mut(self.stream());
        Ok(ptr)
    }

    fn optim_fn(&self, name: &'static str) -> Result<cudarc::driver::CudaFunction> {
        self.function(KernelSource::Optim, name)
    }
}

impl OptimOps for CudaBackend {
    fn sgd_update(
        &self,
        s: &SgdStep,
        w: &mut CudaSlice<f32>,
        g: &CudaSlice<f32>,
        momentum_buf: Option<&mut CudaSlice<f32>>,
    ) -> Result<()> {
        let n = w.len();
        check_len("sgd_update", "g", g.len(), n)?;
        let has_momentum = s.momentum != 0.0;
        let buf = self.optional_ptr("sgd_update", "momentum_buf", has_momentum, momentum_buf, n)?;
        if n == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.optim_fn("sgd_f32")?,
            grid(n),
            [
                w,
                g,
                &buf,
                &(n as u64),
                &s.lr,
                &s.momentum,
                &s.dampening,
                &s.weight_decay,
                &i32::from(s.nesterov),
                &i32::from(s.first_step),
                &i32::from(has_momentum)
            ]
        )
    }

    fn adam_update(
        &self,
        s: &AdamStep,
        w: &mut CudaSlice<f32>,
        g: &CudaSlice<f32>,
        m: &mut CudaSlice<f32>,
        v: &mut CudaSlice<f32>,
        v_max: Option<&mut CudaSlice<f32>>,
    ) -> Result<()> {
        let n = w.len();
        check_state(
            "adam_update",
            n,
            &[("g", g.len()), ("m", m.len()), ("v", v.len())],
        )?;
        let vmax = self.optional_ptr("adam_update", "amsgrad v_max", s.amsgrad, v_max, n)?;
        if n == 0 {
            return Ok(());
        }
        let step_size = s.lr / s.bias_correction1;
        let bc2_sqrt = s.bias_correction2.sqrt();
        let decay = if s.decoupled {
            1.0 - s.lr * s.weight_decay
        } else {
            1.0
        };
        let coupled_wd = if s.decoupled { 0.0 } else { s.weight_decay };
        launch!(
            self,
            self.optim_fn("adam_f32")?,
            grid(n),
            [
                w,
                g,
                m,
                v,
                &vmax,
                &(n as u64),
                &s.beta1,
                &s.beta2,
                &s.eps,
                &step_size,
                &bc2_sqrt,
                &decay,
                &coupled_wd,
                &i32::from(s.amsgrad)
            ]
        )
    }

    fn rmsprop_update(
        &self,
        s: &RmspropStep,
        w: &mut CudaSlice<f32>,
        g: &CudaSlice<f32>,
        square_avg: &mut CudaSlice<f32>,
        momentum_buf: Option<&mut CudaSlice<f32>>,
        grad_avg: Option<&mut CudaSlice<f32>>,
    ) -> Result<()> {
        let n = w.len();
        check_state(
            "rmsprop_update",
            n,
            &[("g", g.len()), ("square_avg", square_avg.len())],
        )?;
        let has_momentum = s.momentum > 0.0;
        let buf = self.optional_ptr(
            "rmsprop_update",
            "momentum_buf",
            has_momentum,
            momentum_buf,
            n,
        )?;
        let gavg = self.optional_ptr(
            "rmsprop_update",
            "centered grad_avg",
            s.centered,
            grad_avg,
            n,
        )?;
        if n == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.optim_fn("rmsprop_f32")?,
            grid(n),
            [
                w,
                g,
                square_avg,
                &buf,
                &gavg,
                &(n as u64),
                &s.lr,
                &s.alpha,
                &s.eps,
                &s.weight_decay,
                &s.momentum,
                &i32::from(has_momentum),
                &i32::from(s.centered)
            ]
        )
    }

    fn adagrad_update(
        &self,
        s: &AdagradStep,
        w: &mut CudaSlice<f32>,
        g: &CudaSlice<f32>,
        sum: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let n = w.len();
        check_state("adagrad_update", n, &[("g", g.len()), ("sum", sum.len())])?;
        if n == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.optim_fn("adagrad_f32")?,
            grid(n),
            [w, g, sum, &(n as u64), &s.clr, &s.eps, &s.weight_decay]
        )
    }

    fn adadelta_update(
        &self,
        s: &AdadeltaStep,
        w: &mut CudaSlice<f32>,
        g: &CudaSlice<f32>,
        square_avg: &mut CudaSlice<f32>,
        acc_delta: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let n = w.len();
        check_state(
            "adadelta_update",
            n,
            &[
                ("g", g.len()),
                ("square_avg", square_avg.len()),
                ("acc_delta", acc_delta.len()),
            ],
        )?;
        if n == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.optim_fn("adadelta_f32")?,
            grid(n),
            [
                w,
                g,
                square_avg,
                acc_delta,
                &(n as u64),
                &s.lr,
                &s.rho,
                &s.eps,
                &s.weight_decay
            ]
        )
    }

    fn nadam_update(
        &self,
        s: &NadamStep,
        w: &mut CudaSlice<f32>,
        g: &CudaSlice<f32>,
        m: &mut CudaSlice<f32>,
        v: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let n = w.len();
        check_state(
            "nadam_update",
            n,
            &[("g", g.len()), ("m", m.len()), ("v", v.len())],
        )?;
        if n == 0 {
            return Ok(());
        }
        // Host-side scalars in f64 like torch (Python floats), then f32.
        let c_grad =
            (f64::from(s.lr) * (1.0 - f64::from(s.mu_t)) / (1.0 - f64::from(s.mu_product))) as f32;
        let c_avg =
            (f64::from(s.lr) * f64::from(s.mu_next) / (1.0 - f64::from(s.mu_product_next))) as f32;
        launch!(
            self,
            self.optim_fn("nadam_f32")?,
            grid(n),
            [
                w,
                g,
                m,
                v,
                &(n as u64),
                &s.beta1,
                &s.beta2,
                &s.eps,
                &s.weight_decay,
                &s.bias_correction2,
                &c_grad,
                &c_avg
            ]
        )
    }

    fn radam_update(
        &self,
        s: &RadamStep,
        w: &mut CudaSlice<f32>,
        g: &CudaSlice<f32>,
        m: &mut CudaSlice<f32>,
        v: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let n = w.len();
        check_state(
            "radam_update",
            n,
            &[("g", g.len()), ("m", m.len()), ("v", v.len())],
        )?;
        if n == 0 {
            return Ok(());
        }
        let bc2_sqrt = s.bias_correction2.sqrt();
        launch!(
            self,
            self.optim_fn("radam_f32")?,
            grid(n),
            [
                w,
                g,
                m,
                v,
                &(n as u64),
                &s.lr,
                &s.beta1,
                &s.beta2,
                &s.eps,
                &s.weight_decay,
                &s.bias_correction1,
                &bc2_sqrt,
                &i32::from(s.rectify),
                &s.rect
            ]
        )
    }

    fn adamax_update(
        &self,
        s: &AdamaxStep,
        w: &mut CudaSlice<f32>,
        g: &CudaSlice<f32>,
        m: &mut CudaSlice<f32>,
        u: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let n = w.len();
        check_state(
            "adamax_update",
            n,
            &[("g", g.len()), ("m", m.len()), ("u", u.len())],
        )?;
        if n == 0 {
            return Ok(());
        }
        let clr = s.lr / s.bias_correction1;
        launch!(
            self,
            self.optim_fn("adamax_f32")?,
            grid(n),
            [
                w,
                g,
                m,
                u,
                &(n as u64),
                &s.beta1,
                &s.beta2,
                &s.eps,
                &s.weight_decay,
                &clr
            ]
        )
    }

    fn lion_update(
        &self,
        s: &LionStep,
        w: &mut CudaSlice<f32>,
        g: &CudaSlice<f32>,
        exp_avg: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let n = w.len();
        check_state(
            "lion_update",
            n,
            &[("g", g.len()), ("exp_avg", exp_avg.len())],
        )?;
        if n == 0 {
            return Ok(());
        }
        let decay = 1.0 - s.lr * s.weight_decay;
        launch!(
            self,
            self.optim_fn("lion_f32")?,
            grid(n),
            [
                w,
                g,
                exp_avg,
                &(n as u64),
                &s.lr,
                &s.beta1,
                &s.beta2,
                &decay
            ]
        )
    }

    fn asgd_update(
        &self,
        s: &AsgdStep,
        w: &mut CudaSlice<f32>,
        g: &CudaSlice<f32>,
        ax: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let n = w.len();
        check_state("asgd_update", n, &[("g", g.len()), ("ax", ax.len())])?;
        if n == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.optim_fn("asgd_f32")?,
            grid(n),
            [
                w,
                g,
                ax,
                &(n as u64),
                &s.eta,
                &s.decay,
                &s.mu,
                &s.weight_decay
            ]
        )
    }

    fn rprop_update(
        &self,
        s: &RpropStep,
        w: &mut CudaSlice<f32>,
        g: &CudaSlice<f32>,
        prev: &mut CudaSlice<f32>,
        step_size: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let n = w.len();
        check_state(
            "rprop_update",
            n,
            &[
                ("g", g.len()),
                ("prev", prev.len()),
                ("step_size", step_size.len()),
            ],
        )?;
        if n == 0 {
            return Ok(());
        }
        launch!(
            self,
            self.optim_fn("rprop_f32")?,
            grid(n),
            [
                w,
                g,
                prev,
                step_size,
                &(n as u64),
                &s.etaminus,
                &s.etaplus,
                &s.step_size_min,
                &s.step_size_max
            ]
        )
    }
}
