   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (56) if w2 != 0x2 goto pc+5
   7: (56) if w4 != 0x1 goto pc+4
   8: (56) if w5 != 0x5 goto pc+3
   9: (46) if w3 & 0xfffffff8 goto pc+2
  10: (b7) r0 = 1
  11: (95) exit
  12: (56) if w2 != 0x2 goto pc+4
  13: (56) if w4 != 0x5 goto pc+3
  14: (46) if w3 & 0xfffffff9 goto pc+2
  15: (b7) r0 = 1
  16: (95) exit
  17: (b7) r0 = 0
  18: (95) exit
