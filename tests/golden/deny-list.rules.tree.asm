   0: (61) r2 = *(u32 *)(r1 +0)
   1: (54) w2 &= 65535
   2: (61) r3 = *(u32 *)(r1 +0)
   3: (74) w3 >>= 16
   4: (61) r4 = *(u32 *)(r1 +4)
   5: (61) r5 = *(u32 *)(r1 +8)
   6: (54) w3 &= 7
   7: (16) if w2 == 0x1 goto pc+5
   8: (56) if w2 != 0x2 goto pc+35
   9: (16) if w4 == 0x1 goto pc+27
  10: (16) if w4 == 0xa goto pc+24
  11: (16) if w4 == 0xffffffff goto pc+12
  12: (05) goto pc+9
  13: (16) if w4 == 0x8 goto pc+2
  14: (16) if w4 == 0xffffffff goto pc+1
  15: (05) goto pc+6
  16: (16) if w5 == 0xffffffff goto pc+1
  17: (05) goto pc+0
  18: (b7) r0 = 1
  19: (7f) r0 >>= r3
  20: (57) r0 &= 1
  21: (95) exit
  22: (16) if w5 == 0xffffffff goto pc+21
  23: (05) goto pc+20
  24: (16) if w5 == 0x3 goto pc+6
  25: (16) if w5 == 0xffffffff goto pc+5
  26: (05) goto pc+0
  27: (b7) r0 = 85
  28: (7f) r0 >>= r3
  29: (57) r0 &= 1
  30: (95) exit
  31: (b7) r0 = 5
  32: (7f) r0 >>= r3
  33: (57) r0 &= 1
  34: (95) exit
  35: (16) if w5 == 0xffffffff goto pc-9
  36: (05) goto pc-10
  37: (16) if w5 == 0x3 goto pc+2
  38: (16) if w5 == 0xffffffff goto pc+1
  39: (05) goto pc+4
  40: (b7) r0 = 15
  41: (7f) r0 >>= r3
  42: (57) r0 &= 1
  43: (95) exit
  44: (b7) r0 = 1
  45: (95) exit
