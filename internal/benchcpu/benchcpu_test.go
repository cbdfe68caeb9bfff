package benchcpu

import "testing"

// CPU time moves forward while the process works, and never back.
func TestNowAdvances(t *testing.T) {
	start := Now()
	x := uint64(1)
	for round := 0; Now() == start; round++ {
		if round == 100 {
			t.Fatal("CPU time did not move after 100M multiplications")
		}
		for i := 0; i < 1_000_000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	if end := Now(); end < start {
		t.Fatalf("CPU time went back: %v → %v (x=%d)", start, end, x)
	}
}

func BenchmarkReport(b *testing.B) {
	start := Now()
	for b.Loop() {
		_ = Now()
	}
	Report(b, start)
}
