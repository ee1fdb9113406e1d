//! A tiny assembler for classic BPF: forward jumps to labels, resolved into
//! 8-bit offsets when the program is finished.

use super::SeccompError;

#[derive(Clone, Copy)]
pub(super) struct Label(usize);

/// Where a conditional jump goes.
#[derive(Clone, Copy)]
pub(super) enum Target {
    Next,
    To(Label),
}
use Target::{Next, To};

enum Insn {
    Plain(libc::sock_filter),
    Jump {
        code: u32,
        k: u32,
        jt: Target,
        jf: Target,
    },
    Ja(Label),
}

#[derive(Default)]
pub(super) struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    pub(super) fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// The label now points at the next instruction emitted.
    pub(super) fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.insns.len());
    }

    fn plain(&mut self, code: u32, k: u32) {
        self.insns.push(Insn::Plain(libc::sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        }));
    }

    pub(super) fn load(&mut self, offset: u32) {
        self.plain(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, offset);
    }

    pub(super) fn alu_and(&mut self, k: u32) {
        self.plain(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K, k);
    }

    pub(super) fn ret(&mut self, k: u32) {
        self.plain(libc::BPF_RET | libc::BPF_K, k);
    }

    pub(super) fn jump(&mut self, op: u32, k: u32, jt: Target, jf: Target) {
        self.insns.push(Insn::Jump {
            code: libc::BPF_JMP | op | libc::BPF_K,
            k,
            jt,
            jf,
        });
    }

    pub(super) fn ja(&mut self, to: Label) {
        self.insns.push(Insn::Ja(to));
    }

    pub(super) fn finish(self) -> Result<Vec<libc::sock_filter>, SeccompError> {
        let offset = |pc: usize, label: Label| -> usize {
            let dest = self.labels[label.0].expect("seccomp: jump to an unbound label");
            // Every label is bound after the jumps to it (forward only).
            dest.checked_sub(pc + 1).expect("seccomp: backward jump")
        };
        let short = |pc: usize, target: Target| -> Result<u8, SeccompError> {
            match target {
                Next => Ok(0),
                To(label) => {
                    let distance = offset(pc, label);
                    u8::try_from(distance).map_err(|_| SeccompError::JumpTooFar { distance })
                }
            }
        };
        let mut out = Vec::with_capacity(self.insns.len());
        for (pc, insn) in self.insns.iter().enumerate() {
            out.push(match *insn {
                Insn::Plain(f) => f,
                Insn::Jump { code, k, jt, jf } => libc::sock_filter {
                    code: code as u16,
                    jt: short(pc, jt)?,
                    jf: short(pc, jf)?,
                    k,
                },
                Insn::Ja(label) => libc::sock_filter {
                    code: (libc::BPF_JMP | libc::BPF_JA) as u16,
                    jt: 0,
                    jf: 0,
                    k: offset(pc, label) as u32,
                },
            });
        }
        Ok(out)
    }
}
