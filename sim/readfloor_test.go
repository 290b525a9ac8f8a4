package sim

import "testing"

// TestReadFloors checks the read floor's bookkeeping: a read's floor is
// what its group had applied when it first began, an issue again keeps it
// (an earlier issue's read index may serve the read), and a crash drops
// the node's reads.
func TestReadFloors(t *testing.T) {
	tests := []struct {
		name      string
		run       func(f *readFloors)
		wantFloor uint64
		wantOK    bool
	}{
		{"floor when issued", func(f *readFloors) {
			f.noteApplied(1, 25)
			f.issue(3, 1, 7)
			f.noteApplied(1, 39)
		}, 25, true},
		{"issued again keeps the first floor", func(f *readFloors) {
			f.noteApplied(1, 25)
			f.issue(3, 1, 7)
			f.noteApplied(1, 39)
			f.issue(3, 1, 7)
		}, 25, true},
		{"highest applied in the group", func(f *readFloors) {
			f.noteApplied(1, 30)
			f.noteApplied(1, 20)
			f.noteApplied(2, 90)
			f.issue(3, 1, 7)
		}, 30, true},
		{"another node's op of the same id", func(f *readFloors) {
			f.noteApplied(1, 10)
			f.issue(2, 1, 7)
			f.noteApplied(1, 39)
			f.issue(3, 1, 7)
		}, 39, true},
		{"crash drops the node's reads", func(f *readFloors) {
			f.noteApplied(1, 25)
			f.issue(3, 1, 7)
			f.forget(3)
		}, 0, false},
		{"never issued", func(f *readFloors) {}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newReadFloors()
			tt.run(&f)
			floor, ok := f.serve(3, 7)
			if floor != tt.wantFloor || ok != tt.wantOK {
				t.Fatalf("serve = %d, %v; want %d, %v", floor, ok, tt.wantFloor, tt.wantOK)
			}
			if _, again := f.serve(3, 7); again {
				t.Fatal("a read served twice")
			}
		})
	}
}
