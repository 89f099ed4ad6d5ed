   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (26) if w3 > 0x7 goto pc+19
   7: (16) if w2 == 0x1 goto pc+4
   8: (56) if w2 != 0x2 goto pc+17
   9: (16) if w4 == 0x1 goto pc+14
  10: (16) if w4 == 0x88 goto pc+10
  11: (05) goto pc+8
  12: (16) if w4 == 0x8 goto pc+1
  13: (05) goto pc+6
  14: (16) if w5 == 0x0 goto pc+1
  15: (05) goto pc+10
  16: (b7) r0 = 5
  17: (7f) r0 >>= r3
  18: (57) r0 &= 1
  19: (95) exit
  20: (05) goto pc+5
  21: (05) goto pc+0
  22: (b7) r0 = 1
  23: (95) exit
  24: (16) if w5 == 0x3 goto pc-3
  25: (05) goto pc+0
  26: (b7) r0 = 0
  27: (95) exit
