   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (56) if w2 != 0x2 goto pc+5
   7: (16) if w4 == 0x1 goto pc+1
   8: (56) if w4 != 0xffffffff goto pc+3
   9: (16) if w5 == 0x3 goto pc+1
  10: (56) if w5 != 0xffffffff goto pc+1
  11: (46) if w3 & 0x4 goto pc+10
  12: (56) if w2 != 0x1 goto pc+3
  13: (16) if w4 == 0x8 goto pc+1
  14: (56) if w4 != 0xffffffff goto pc+1
  15: (46) if w3 & 0x7 goto pc+6
  16: (56) if w2 != 0x2 goto pc+3
  17: (16) if w4 == 0xa goto pc+1
  18: (56) if w4 != 0xffffffff goto pc+1
  19: (46) if w3 & 0x1 goto pc+2
  20: (b7) r0 = 1
  21: (95) exit
  22: (b7) r0 = 0
  23: (95) exit
