package chunk

import "hash/crc32"

// ConcatChecksum computes the crc32c of a concatenation of parts from each
// part's crc32c and length alone, without their bytes. The meta group uses
// it to name a file's content independently of how the content was cut into
// chunks (a retry on a node with another chunk size cuts it differently).
// The zero value is the checksum of no bytes.
//
// The math: a CRC is the remainder of the message polynomial, so with its
// pre- and post-inversion crc(A‖B) = crc(A)·x^(8·len(B)) ⊕ crc(B) modulo the
// CRC polynomial. Polynomials here are in the reflected bit order of
// hash/crc32: bit 31 holds the coefficient of x^0, bit 0 that of x^31.
type ConcatChecksum struct {
	sum uint32
	// shift is x^(8·shiftLen) mod P, kept because consecutive parts
	// (chunks of one file) are mostly of one size. 0 means not computed:
	// x^k mod P is never 0, since P has a constant term.
	shift    uint32
	shiftLen int64
}

// one is the polynomial 1 in reflected order.
const one = 1 << 31

// Add appends a part of n bytes whose crc32c is crc.
func (c *ConcatChecksum) Add(crc uint32, n int64) {
	if n < 0 {
		panic("chunk: ConcatChecksum.Add of a negative length")
	}
	if c.shift == 0 || c.shiftLen != n {
		c.shift, c.shiftLen = xPow8n(n), n
	}
	c.sum = mulMod(c.sum, c.shift) ^ crc
}

// Sum32 returns the crc32c of the parts added so far, in order.
func (c *ConcatChecksum) Sum32() uint32 { return c.sum }

// mulMod returns a·b modulo the crc32c polynomial.
func mulMod(a, b uint32) uint32 {
	var p uint32
	for m := uint32(one); m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		// b·x: a shift towards bit 0; a coefficient leaving x^31 becomes
		// x^32, which is the polynomial's low terms.
		if b&1 != 0 {
			b = b>>1 ^ crc32.Castagnoli
		} else {
			b >>= 1
		}
	}
	return p
}

// xPow8n returns x^(8n) modulo the crc32c polynomial: the product of the
// powers x^(8·2^k) for the bits k set in n.
func xPow8n(n int64) uint32 {
	result := uint32(one)
	for k := 0; n > 0; k, n = k+1, n>>1 {
		if n&1 != 0 {
			result = mulMod(result, xPow8Pow2[k])
		}
	}
	return result
}

// xPow8Pow2 holds x^(8·2^k) modulo the polynomial for every bit k of a
// length (read only), so that xPow8n multiplies once per bit set rather
// than also squaring once per bit: a fingerprint of every meta command
// needs it.
var xPow8Pow2 = func() (t [63]uint32) {
	p := uint32(one >> 8) // x^8
	for k := range t {
		t[k] = p
		p = mulMod(p, p)
	}
	return t
}()
