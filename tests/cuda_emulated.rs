//! The CUDA Mamba-1 scan (kernels/scan.cu: local pass, carry, output pass) and Mamba-2 kernels
//! (kernels/mamba2.cu with the conv and norm kernels it shares: the sequential scan and the
//! chunked SSD kernels, their mma.sync through emu.h's lane-by-lane fallback, in 3xTF32 and TF32),
//! run on the CPU in emulation by `kernels/emulate/run.sh quick` against float64 references of
//! the scan and the mixer, whole and in stripes; so a kernel change that breaks either path fails
//! here, without a GPU. Skipped (with a note) where no C++20 compiler is installed.

use std::process::Command;

#[test]
fn mamba2_kernels_match_the_reference_in_emulation() {
    let has_cxx = Command::new("g++")
        .args(["-std=c++20", "-x", "c++", "-fsyntax-only", "-"])
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cxx {
        eprintln!("skipped: no g++ with C++20 to emulate the CUDA kernels");
        return;
    }
    let out = Command::new("bash")
        .args(["kernels/emulate/run.sh", "quick"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "emulated kernels failed");
    assert!(
        text.contains("striped identical: 1, odd stripes identical: 1"),
        "{text}"
    );
    assert!(
        text.contains("mamba1 scan: max |d| vs float64") && !text.contains("striped identical: 0"),
        "{text}"
    );
    assert!(
        text.contains("ssd f32: max |kernel - reference|")
            && text.contains("stripes of M2_Q identical: 1")
            && text.contains("ssd tf32: max |kernel - reference|")
            && text.contains("gated norm bf16 output = bf16(f32 output): 1")
            && text.contains("all ok"),
        "{text}"
    );
}
