//! The kernel relay's classifier, assembled here: a few dozen BPF instructions for one job
//! (match a relayed stream, rewrite its headers, hand it on) need no compiler, and assembling
//! them in Rust keeps Switchboard buildable with nothing but its Rust toolchain. The
//! verifier checks every access when it is loaded; `tests.rs` runs it over packets.
//!
//! For each IPv4/UDP datagram arriving on an attached interface it looks up the destination
//! (address, port) in the flow map. A datagram it does not claim goes on unchanged to the next
//! program and the socket (`TCX_NEXT`): not RTP, not ours, from any source but the flow's
//! latched one (the relay's strict source), another SSRC, a payload type the flow does not
//! map, a fragment, IP options, lengths that disagree. A claimed one has its addresses, ports,
//! payload type, sequence number, timestamp and SSRC rewritten as the userspace relay would,
//! both checksums updated, its flow's counters advanced, and is delivered to the peer.

/// Offsets in an Ethernet frame carrying IPv4 (no options), UDP and an RTP fixed header.
mod at {
    pub(super) const ETH_TYPE: i16 = 12;
    pub(super) const IP_VHL: i16 = 14;
    pub(super) const IP_LEN: i16 = 16;
    /// The TTL, then the protocol: one 16-bit word of the header's checksum.
    pub(super) const IP_TTL: i16 = 22;
    pub(super) const IP_FRAG: i16 = 20;
    pub(super) const IP_PROTO: i16 = 23;
    pub(super) const IP_CSUM: i32 = 24;
    pub(super) const IP_SADDR: i16 = 26;
    pub(super) const UDP_SPORT: i16 = 34;
    pub(super) const UDP_LEN: i16 = 38;
    pub(super) const UDP_CSUM: i32 = 40;
    pub(super) const RTP: i16 = 42;
    pub(super) const RTP_SEQ: i16 = 44;
    pub(super) const RTP_TS: i16 = 46;
    pub(super) const RTP_SSRC: i16 = 50;
    /// The headers the program reads and rewrites end here.
    pub(super) const END: i32 = 54;
}

/// The flow map's value, as the program reads and writes it (`super::Flow` encodes it).
/// Addresses, ports and SSRCs are in network byte order, as they sit in the packet; offsets
/// and counters in the machine's.
pub(super) mod value {
    pub(crate) const SRC_ADDR: i16 = 0;
    pub(crate) const SRC_PORT: i16 = 4;
    pub(crate) const AUDIO_IN: i16 = 6;
    pub(crate) const AUDIO_OUT: i16 = 7;
    pub(crate) const EVENT_IN: i16 = 8;
    pub(crate) const EVENT_OUT: i16 = 9;
    pub(crate) const SEQ_OFFSET: i16 = 10;
    pub(crate) const SSRC_IN: i16 = 12;
    pub(crate) const SSRC_OUT: i16 = 16;
    pub(crate) const TS_OFFSET: i16 = 20;
    /// New source and destination address, then ports: the frame's bytes 26..38.
    pub(crate) const NEW_SADDR: i16 = 24;
    pub(crate) const NEW_DADDR: i16 = 28;
    pub(crate) const NEW_SPORT: i16 = 32;
    pub(crate) const NEW_DPORT: i16 = 34;
    /// Where a claimed packet goes: 0, up this host's stack to a peer here; otherwise out
    /// of this interface to its next hop.
    pub(crate) const EGRESS: i16 = 36;
    pub(crate) const PACKETS: i16 = 48;
    pub(crate) const BYTES: i16 = 56;
    pub(crate) const LAST_NS: i16 = 64;
    pub(crate) const LAST_IN_SEQ: i16 = 72;
    pub(crate) const LAST_OUT_SEQ: i16 = 74;
    pub(crate) const LAST_OUT_TS: i16 = 76;
    pub(crate) const SIZE: usize = 80;
}

/// The flow map's key: the destination address and port, as in the packet, and two zero
/// bytes.
pub(super) const KEY_SIZE: usize = 8;

/// What the program returns: `TCX_NEXT` passes the datagram on untouched to the next program
/// and the socket it was sent to; `TCX_PASS` takes a rewritten one up the stack.
pub(super) const TCX_NEXT: i32 = -1;
pub(super) const TCX_PASS: i32 = 0;
/// What `bpf_redirect_neigh` returns when it takes the packet.
#[cfg(test)]
pub(super) const TC_ACT_REDIRECT: i32 = 7;
const TC_ACT_SHOT: i32 = 2;

// Registers, opcodes and helpers of the BPF instruction set (Documentation/bpf/standardization).
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
const R6: u8 = 6;
const R7: u8 = 7;
const R8: u8 = 8;
const R9: u8 = 9;
const FP: u8 = 10;

const B: u8 = 0x10;
const H: u8 = 0x08;
const W: u8 = 0x00;
const DW: u8 = 0x18;

const LDX: u8 = 0x01 | 0x60;
const STX: u8 = 0x03 | 0x60;
const ST: u8 = 0x02 | 0x60;
const ALU32: u8 = 0x04;
const ALU64: u8 = 0x07;
const JMP: u8 = 0x05;
const K: u8 = 0x00;
const X: u8 = 0x08;

const ADD: u8 = 0x00;
const SUB: u8 = 0x10;
const OR: u8 = 0x40;
const AND: u8 = 0x50;
const MOV: u8 = 0xb0;
/// Byte swap to big-endian (a swap on this little-endian machine).
const END_BE: u8 = 0xd0 | 0x08;

const JEQ: u8 = 0x10;
const JGT: u8 = 0x20;
const JNE: u8 = 0x50;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;

const MAP_LOOKUP_ELEM: i32 = 1;
const KTIME_GET_NS: i32 = 5;
const SKB_STORE_BYTES: i32 = 9;
const L3_CSUM_REPLACE: i32 = 10;
const L4_CSUM_REPLACE: i32 = 11;
const CSUM_DIFF: i32 = 28;
const REDIRECT_NEIGH: i32 = 152;

const F_PSEUDO_HDR: i32 = 1 << 4;
const F_MARK_MANGLED_0: i32 = 1 << 5;

/// `struct __sk_buff` fields.
const SKB_LEN: i16 = 0;
const SKB_DATA: i16 = 76;
const SKB_DATA_END: i16 = 80;

#[derive(Clone, Copy)]
struct Label(usize);

/// A BPF assembler with forward labels, just enough for the program below.
#[derive(Default)]
struct Asm {
    insns: Vec<u64>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    fn raw(&mut self, op: u8, dst: u8, src: u8, off: i16, imm: i32) {
        let insn = op as u64
            | ((dst as u64 | (src as u64) << 4) << 8)
            | (off as u16 as u64) << 16
            | (imm as u32 as u64) << 32;
        self.insns.push(insn);
    }
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }
    fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.insns.len());
    }
    fn mov(&mut self, dst: u8, src: u8) {
        self.raw(ALU64 | MOV | X, dst, src, 0, 0);
    }
    fn mov_k(&mut self, dst: u8, imm: i32) {
        self.raw(ALU64 | MOV | K, dst, 0, 0, imm);
    }
    fn alu_k(&mut self, op: u8, dst: u8, imm: i32) {
        self.raw(ALU64 | op | K, dst, 0, 0, imm);
    }
    fn alu32(&mut self, op: u8, dst: u8, src: u8) {
        self.raw(ALU32 | op | X, dst, src, 0, 0);
    }
    fn be(&mut self, dst: u8, bits: i32) {
        self.raw(ALU32 | END_BE, dst, 0, 0, bits);
    }
    fn ldx(&mut self, size: u8, dst: u8, src: u8, off: i16) {
        self.raw(LDX | size, dst, src, off, 0);
    }
    fn stx(&mut self, size: u8, dst: u8, off: i16, src: u8) {
        self.raw(STX | size, dst, src, off, 0);
    }
    fn st_k(&mut self, size: u8, dst: u8, off: i16, imm: i32) {
        self.raw(ST | size, dst, 0, off, imm);
    }
    /// `*(u64 *)(dst + off) += src`, atomically.
    fn atomic_add(&mut self, dst: u8, off: i16, src: u8) {
        self.raw(0x03 | 0xc0 | DW, dst, src, off, 0);
    }
    fn jmp_k(&mut self, op: u8, dst: u8, imm: i32, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.raw(JMP | op | K, dst, 0, 0, imm);
    }
    fn jmp_x(&mut self, op: u8, dst: u8, src: u8, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.raw(JMP | op | X, dst, src, 0, 0);
    }
    fn ja(&mut self, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.raw(JMP, 0, 0, 0, 0);
    }
    fn call(&mut self, helper: i32) {
        self.raw(JMP | CALL, 0, 0, 0, helper);
    }
    fn exit(&mut self) {
        self.raw(JMP | EXIT, 0, 0, 0, 0);
    }
    /// Loads a map's address from its descriptor (`BPF_PSEUDO_MAP_FD`): two slots.
    fn ld_map(&mut self, dst: u8, fd: i32) {
        self.raw(0x18, dst, 1, 0, fd);
        self.raw(0, 0, 0, 0, 0);
    }
    fn finish(mut self) -> Vec<u64> {
        for (at, label) in std::mem::take(&mut self.fixups) {
            let target = self.labels[label.0].expect("every label is bound");
            let off = (target as i64 - at as i64 - 1) as i16;
            self.insns[at] |= (off as u16 as u64) << 16;
        }
        self.insns
    }
}

/// Linux's default TTL (`net.ipv4.ip_default_ttl`), which the userspace relay's packets carry.
const DEFAULT_TTL: u16 = 64;

/// Big-endian constants as a little-endian load of the packet sees them.
const fn be16(v: u16) -> i32 {
    u16::from_ne_bytes(v.to_be_bytes()) as i32
}

/// The stack: the flow key, then the old and the new bytes 26..54 of the frame.
const KEY: i16 = -72;
const OLD: i16 = -64;
const NEW: i16 = -32;
const SPAN: i32 = at::END - at::IP_SADDR as i32;

/// The relay program over the flow map `map_fd`.
pub(super) fn relay(map_fd: i32) -> Vec<u64> {
    use value as v;
    let mut a = Asm::default();
    let next = a.label();
    let shot = a.label();
    let audio = a.label();
    let mapped = a.label();
    let pass = a.label();

    // r6 = skb; r2..r3 = the frame; it must hold the headers.
    a.mov(R6, R1);
    let bounds = |a: &mut Asm| {
        a.ldx(W, R2, R6, SKB_DATA);
        a.ldx(W, R3, R6, SKB_DATA_END);
        a.mov(R4, R2);
        a.alu_k(ADD, R4, at::END);
        a.jmp_x(JGT, R4, R3, next);
    };
    bounds(&mut a);
    // IPv4 without options, UDP, not a fragment.
    a.ldx(H, R4, R2, at::ETH_TYPE);
    a.jmp_k(JNE, R4, be16(0x0800), next);
    a.ldx(B, R4, R2, at::IP_VHL);
    a.jmp_k(JNE, R4, 0x45, next);
    a.ldx(B, R4, R2, at::IP_PROTO);
    a.jmp_k(JNE, R4, 17, next);
    a.ldx(H, R4, R2, at::IP_FRAG);
    a.alu_k(AND, R4, be16(0x3fff));
    a.jmp_k(JNE, R4, 0, next);
    // The IP and UDP lengths agree with the frame's.
    a.ldx(W, R5, R6, SKB_LEN);
    a.ldx(H, R4, R2, at::IP_LEN);
    a.be(R4, 16);
    a.alu_k(SUB, R5, 14);
    a.jmp_x(JNE, R4, R5, next);
    a.ldx(H, R4, R2, at::UDP_LEN);
    a.be(R4, 16);
    a.alu_k(SUB, R5, 20);
    a.jmp_x(JNE, R4, R5, next);
    // RTP version 2.
    a.ldx(B, R4, R2, at::RTP);
    a.alu_k(AND, R4, 0xc0);
    a.jmp_k(JNE, R4, 0x80, next);

    // The flow of (destination address, port).
    a.ldx(W, R4, R2, at::IP_SADDR + 4);
    a.stx(W, FP, KEY, R4);
    a.ldx(H, R4, R2, at::UDP_SPORT + 2);
    a.stx(H, FP, KEY + 4, R4);
    a.st_k(H, FP, KEY + 6, 0);
    a.ld_map(R1, map_fd);
    a.mov(R2, FP);
    a.alu_k(ADD, R2, KEY as i32);
    a.call(MAP_LOOKUP_ELEM);
    a.jmp_k(JEQ, R0, 0, next);
    a.mov(R7, R0);
    bounds(&mut a);

    // Only from the latched source, only its SSRC.
    a.ldx(W, R4, R2, at::IP_SADDR);
    a.ldx(W, R5, R7, v::SRC_ADDR);
    a.jmp_x(JNE, R4, R5, next);
    a.ldx(H, R4, R2, at::UDP_SPORT);
    a.ldx(H, R5, R7, v::SRC_PORT);
    a.jmp_x(JNE, R4, R5, next);
    a.ldx(W, R4, R2, at::RTP_SSRC);
    a.ldx(W, R5, R7, v::SSRC_IN);
    a.jmp_x(JNE, R4, R5, next);
    // The payload type, mapped: audio, or telephone-event; r4 = the new second byte.
    a.ldx(B, R8, R2, at::RTP + 1);
    a.mov(R9, R8);
    a.alu_k(AND, R9, 0x80);
    a.alu_k(AND, R8, 0x7f);
    a.ldx(B, R4, R7, v::AUDIO_IN);
    a.jmp_x(JEQ, R8, R4, audio);
    a.ldx(B, R4, R7, v::EVENT_IN);
    a.jmp_x(JNE, R8, R4, next);
    a.ldx(B, R4, R7, v::EVENT_OUT);
    a.ja(mapped);
    a.bind(audio);
    a.ldx(B, R4, R7, v::AUDIO_OUT);
    a.bind(mapped);
    a.raw(ALU64 | OR | X, R4, R9, 0, 0);

    // The old bytes 26..54, and a copy to rewrite.
    for i in 0..(SPAN / 4) as i16 {
        a.ldx(W, R5, R2, at::IP_SADDR + 4 * i);
        a.stx(W, FP, OLD + 4 * i, R5);
        a.stx(W, FP, NEW + 4 * i, R5);
    }
    a.stx(B, FP, NEW + (at::RTP + 1 - at::IP_SADDR), R4);
    // The TTL word, kept where the key was (the key is done with).
    a.ldx(H, R5, R2, at::IP_TTL);
    a.stx(H, FP, KEY, R5);
    for (field, size) in [
        (v::NEW_SADDR, W),
        (v::NEW_DADDR, W),
        (v::NEW_SPORT, H),
        (v::NEW_DPORT, H),
    ] {
        a.ldx(size, R5, R7, field);
        a.stx(size, FP, NEW + (field - v::NEW_SADDR), R5);
    }
    a.ldx(W, R5, R7, v::SSRC_OUT);
    a.stx(W, FP, NEW + (at::RTP_SSRC - at::IP_SADDR), R5);
    // Sequence number and timestamp, moved by the flow's offsets; the last ones noted.
    a.ldx(H, R5, R2, at::RTP_SEQ);
    a.be(R5, 16);
    a.stx(H, R7, v::LAST_IN_SEQ, R5);
    a.ldx(H, R8, R7, v::SEQ_OFFSET);
    a.alu32(ADD, R5, R8);
    a.stx(H, R7, v::LAST_OUT_SEQ, R5);
    a.be(R5, 16);
    a.stx(H, FP, NEW + (at::RTP_SEQ - at::IP_SADDR), R5);
    a.ldx(W, R5, R2, at::RTP_TS);
    a.be(R5, 32);
    a.ldx(W, R8, R7, v::TS_OFFSET);
    a.alu32(ADD, R5, R8);
    a.stx(W, R7, v::LAST_OUT_TS, R5);
    a.be(R5, 32);
    a.stx(W, FP, NEW + (at::RTP_TS - at::IP_SADDR), R5);

    // Counters: packets, payload bytes, when.
    a.mov_k(R8, 1);
    a.atomic_add(R7, v::PACKETS, R8);
    a.ldx(W, R8, R6, SKB_LEN);
    a.alu_k(SUB, R8, at::RTP as i32);
    a.atomic_add(R7, v::BYTES, R8);
    a.call(KTIME_GET_NS);
    a.stx(DW, R7, v::LAST_NS, R0);

    // Checksum differences: the addresses (IP header and UDP pseudo-header), then the rest.
    a.mov(R1, FP);
    a.alu_k(ADD, R1, OLD as i32);
    a.mov_k(R2, 8);
    a.mov(R3, FP);
    a.alu_k(ADD, R3, NEW as i32);
    a.mov_k(R4, 8);
    a.mov_k(R5, 0);
    a.call(CSUM_DIFF);
    a.mov(R8, R0);
    a.mov(R1, FP);
    a.alu_k(ADD, R1, (OLD + 8) as i32);
    a.mov_k(R2, SPAN - 8);
    a.mov(R3, FP);
    a.alu_k(ADD, R3, (NEW + 8) as i32);
    a.mov_k(R4, SPAN - 8);
    a.mov_k(R5, 0);
    a.call(CSUM_DIFF);
    a.mov(R9, R0);
    // The new bytes, then the checksums over them (the store would undo a checksum first).
    a.mov(R1, R6);
    a.mov_k(R2, at::IP_SADDR as i32);
    a.mov(R3, FP);
    a.alu_k(ADD, R3, NEW as i32);
    a.mov_k(R4, SPAN);
    a.mov_k(R5, 0);
    a.call(SKB_STORE_BYTES);
    a.jmp_k(JNE, R0, 0, shot);
    a.mov(R1, R6);
    a.mov_k(R2, at::IP_CSUM);
    a.mov_k(R3, 0);
    a.mov(R4, R8);
    a.mov_k(R5, 0);
    a.call(L3_CSUM_REPLACE);
    a.jmp_k(JNE, R0, 0, shot);
    a.mov(R1, R6);
    a.mov_k(R2, at::UDP_CSUM);
    a.mov_k(R3, 0);
    a.mov(R4, R8);
    a.mov_k(R5, F_PSEUDO_HDR | F_MARK_MANGLED_0);
    a.call(L4_CSUM_REPLACE);
    a.jmp_k(JNE, R0, 0, shot);
    a.mov(R1, R6);
    a.mov_k(R2, at::UDP_CSUM);
    a.mov_k(R3, 0);
    a.mov(R4, R9);
    a.mov_k(R5, F_MARK_MANGLED_0);
    a.call(L4_CSUM_REPLACE);
    a.jmp_k(JNE, R0, 0, shot);
    // The TTL a packet sent from our socket would have (the default, 64), not what was left
    // of the peer's: the header's checksum moved by the 16-bit word it sits in.
    a.ldx(H, R3, FP, KEY);
    a.mov(R4, R3);
    a.alu_k(AND, R4, be16(0x00ff));
    a.alu_k(OR, R4, be16(DEFAULT_TTL << 8));
    a.stx(H, FP, KEY + 2, R4);
    a.mov(R1, R6);
    a.mov_k(R2, at::IP_CSUM);
    a.mov_k(R5, 2);
    a.call(L3_CSUM_REPLACE);
    a.jmp_k(JNE, R0, 0, shot);
    a.mov(R1, R6);
    a.mov_k(R2, at::IP_TTL as i32);
    a.mov(R3, FP);
    a.alu_k(ADD, R3, (KEY + 2) as i32);
    a.mov_k(R4, 1);
    a.mov_k(R5, 0);
    a.call(SKB_STORE_BYTES);
    a.jmp_k(JNE, R0, 0, shot);
    // A peer elsewhere: out of the flow's interface, the next hop's link address filled in
    // by the neighbour table (resolved first if need be).
    a.ldx(W, R1, R7, v::EGRESS);
    a.jmp_k(JEQ, R1, 0, pass);
    a.mov_k(R2, 0);
    a.mov_k(R3, 0);
    a.mov_k(R4, 0);
    a.call(REDIRECT_NEIGH);
    a.exit();
    // A peer here (the packet came over loopback): up the stack to its socket, on the route
    // the sender's stack cached, which still says "local". (A redirect to loopback's ingress
    // would drop that route, and the lookup made instead refuses 127/8 from outside.)
    a.bind(pass);
    a.mov_k(R0, TCX_PASS);
    a.exit();

    a.bind(shot);
    a.mov_k(R0, TC_ACT_SHOT);
    a.exit();
    a.bind(next);
    a.mov_k(R0, TCX_NEXT);
    a.exit();
    a.finish()
}
