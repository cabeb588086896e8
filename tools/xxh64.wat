;; XXH64 over memory the caller owns: the source of src/core/xxh64_wasm.ts (regenerate with
;; `npx tsx tools/build_xxh64_wasm.ts`; test/core/xxh64_wasm.test.ts fails when the two differ).
;;
;; Why not xxhash-wasm alone: its module defines its own memory, so every input is first
;; copied into it. This module imports its memory, so a buffer allocated in that memory (the
;; switch's copy buffer, the appliance's frame buffers) is hashed where it lies.
;;
;; The algorithm is XXH64 as published (xxhash.h, XXH64 and XXH64_finalize), step for step.
;; `ptr + len` must not pass 2^32 (callers keep memories below 2 GiB).
(module
  (import "env" "memory" (memory 1))

  ;; XXH64_round: acc + input * PRIME64_2, rotated left by 31, times PRIME64_1.
  (func $round (param $acc i64) (param $input i64) (result i64)
    (i64.mul
      (i64.rotl
        (i64.add (local.get $acc) (i64.mul (local.get $input) (i64.const 0xC2B2AE3D27D4EB4F)))
        (i64.const 31))
      (i64.const 0x9E3779B185EBCA87)))

  ;; XXH64_mergeRound: (acc ^ round(0, val)) * PRIME64_1 + PRIME64_4.
  (func $merge (param $acc i64) (param $val i64) (result i64)
    (i64.add
      (i64.mul
        (i64.xor (local.get $acc) (call $round (i64.const 0) (local.get $val)))
        (i64.const 0x9E3779B185EBCA87))
      (i64.const 0x85EBCA77C2B2AE63)))

  ;; XXH64 of the `len` bytes at `ptr` with `seed`, as a signed i64 (JavaScript: BigInt.asUintN(64, ...)).
  (func (export "xxh64") (param $ptr i32) (param $len i32) (param $seed i64) (result i64)
    (local $end i32)
    (local $limit i32)
    (local $h i64)
    (local $v1 i64)
    (local $v2 i64)
    (local $v3 i64)
    (local $v4 i64)
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (if (i32.ge_u (local.get $len) (i32.const 32))
      (then
        (local.set $limit (i32.sub (local.get $end) (i32.const 32)))
        (local.set $v1 (i64.add (i64.add (local.get $seed) (i64.const 0x9E3779B185EBCA87)) (i64.const 0xC2B2AE3D27D4EB4F)))
        (local.set $v2 (i64.add (local.get $seed) (i64.const 0xC2B2AE3D27D4EB4F)))
        (local.set $v3 (local.get $seed))
        (local.set $v4 (i64.sub (local.get $seed) (i64.const 0x9E3779B185EBCA87)))
        ;; Four lanes of 8 bytes per 32-byte stripe, while a whole stripe remains (the rounds
        ;; written out: Node 20's V8 does not inline the call, which halves the rate).
        (loop $stripes
          (local.set $v1
            (i64.mul
              (i64.rotl
                (i64.add (local.get $v1) (i64.mul (i64.load (local.get $ptr)) (i64.const 0xC2B2AE3D27D4EB4F)))
                (i64.const 31))
              (i64.const 0x9E3779B185EBCA87)))
          (local.set $v2
            (i64.mul
              (i64.rotl
                (i64.add (local.get $v2) (i64.mul (i64.load offset=8 (local.get $ptr)) (i64.const 0xC2B2AE3D27D4EB4F)))
                (i64.const 31))
              (i64.const 0x9E3779B185EBCA87)))
          (local.set $v3
            (i64.mul
              (i64.rotl
                (i64.add (local.get $v3) (i64.mul (i64.load offset=16 (local.get $ptr)) (i64.const 0xC2B2AE3D27D4EB4F)))
                (i64.const 31))
              (i64.const 0x9E3779B185EBCA87)))
          (local.set $v4
            (i64.mul
              (i64.rotl
                (i64.add (local.get $v4) (i64.mul (i64.load offset=24 (local.get $ptr)) (i64.const 0xC2B2AE3D27D4EB4F)))
                (i64.const 31))
              (i64.const 0x9E3779B185EBCA87)))
          (local.set $ptr (i32.add (local.get $ptr) (i32.const 32)))
          (br_if $stripes (i32.le_u (local.get $ptr) (local.get $limit))))
        (local.set $h
          (i64.add
            (i64.add (i64.rotl (local.get $v1) (i64.const 1)) (i64.rotl (local.get $v2) (i64.const 7)))
            (i64.add (i64.rotl (local.get $v3) (i64.const 12)) (i64.rotl (local.get $v4) (i64.const 18)))))
        (local.set $h (call $merge (local.get $h) (local.get $v1)))
        (local.set $h (call $merge (local.get $h) (local.get $v2)))
        (local.set $h (call $merge (local.get $h) (local.get $v3)))
        (local.set $h (call $merge (local.get $h) (local.get $v4))))
      (else
        (local.set $h (i64.add (local.get $seed) (i64.const 0x27D4EB2F165667C5)))))
    (local.set $h (i64.add (local.get $h) (i64.extend_i32_u (local.get $len))))
    ;; XXH64_finalize: the rest in 8-byte lanes, then one 4-byte lane, then single bytes.
    (block $lanesDone
      (loop $lanes
        (br_if $lanesDone (i32.gt_u (i32.add (local.get $ptr) (i32.const 8)) (local.get $end)))
        (local.set $h
          (i64.add
            (i64.mul
              (i64.rotl
                (i64.xor (local.get $h) (call $round (i64.const 0) (i64.load (local.get $ptr))))
                (i64.const 27))
              (i64.const 0x9E3779B185EBCA87))
            (i64.const 0x85EBCA77C2B2AE63)))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 8)))
        (br $lanes)))
    (if (i32.le_u (i32.add (local.get $ptr) (i32.const 4)) (local.get $end))
      (then
        (local.set $h
          (i64.add
            (i64.mul
              (i64.rotl
                (i64.xor (local.get $h) (i64.mul (i64.load32_u (local.get $ptr)) (i64.const 0x9E3779B185EBCA87)))
                (i64.const 23))
              (i64.const 0xC2B2AE3D27D4EB4F))
            (i64.const 0x165667B19E3779F9)))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 4)))))
    (block $bytesDone
      (loop $bytes
        (br_if $bytesDone (i32.ge_u (local.get $ptr) (local.get $end)))
        (local.set $h
          (i64.mul
            (i64.rotl
              (i64.xor (local.get $h) (i64.mul (i64.load8_u (local.get $ptr)) (i64.const 0x27D4EB2F165667C5)))
              (i64.const 11))
            (i64.const 0x9E3779B185EBCA87)))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
        (br $bytes)))
    ;; XXH64_avalanche.
    (local.set $h (i64.mul (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 33))) (i64.const 0xC2B2AE3D27D4EB4F)))
    (local.set $h (i64.mul (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 29))) (i64.const 0x165667B19E3779F9)))
    (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 32)))))
