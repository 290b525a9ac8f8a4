package server

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestIOWorkersCompleteEachJob submits jobs to a few I/O queues, some
// failing, and runs their completions only once every job's work is done,
// as a busy event loop does: each completion must get its own job's outcome
// (not one a later job's work left behind), after that job's work, and a
// queue's completions must come in the order of its jobs (the core keeps a
// log batch and the next apart only by that order).
func TestIOWorkersCompleteEachJob(t *testing.T) {
	const queues, perQueue = 3, 20
	w := newIOWorkers()
	var mu sync.Mutex
	var posted []func()
	w.post = func(f func()) bool {
		mu.Lock()
		defer mu.Unlock()
		posted = append(posted, f)
		return true
	}
	type outcome struct {
		queue, job int
		err        error
		workDone   bool
	}
	var got []outcome // appended by completions, which run on this goroutine
	var worked sync.Map
	jobErr := func(q, j int) error {
		if (q+j)%3 == 0 {
			return fmt.Errorf("queue %d job %d failed", q, j)
		}
		return nil
	}
	for j := range perQueue {
		for q := range queues {
			key := [2]int{q, j}
			w.submit(uint64(q+1), func() error {
				worked.Store(key, true)
				return jobErr(q, j)
			}, func(err error) {
				_, done := worked.Load(key)
				got = append(got, outcome{q, j, err, done})
			})
		}
	}
	w.close() // waits for every job's work; completions are only posted
	mu.Lock()
	for _, f := range posted {
		f()
	}
	mu.Unlock()
	if len(got) != queues*perQueue {
		t.Fatalf("%d completions, want %d", len(got), queues*perQueue)
	}
	next := make([]int, queues)
	for _, o := range got {
		if !o.workDone {
			t.Fatalf("queue %d job %d completed before its work ran", o.queue, o.job)
		}
		if want := jobErr(o.queue, o.job); fmt.Sprint(o.err) != fmt.Sprint(want) {
			t.Fatalf("queue %d job %d completed with %v, want its own outcome %v", o.queue, o.job, o.err, want)
		}
		if o.job != next[o.queue] {
			t.Fatalf("queue %d: job %d completed where job %d was due", o.queue, o.job, next[o.queue])
		}
		next[o.queue]++
	}
}

// TestIOWorkersNeverBlockTheLoop: a queue whose disk is stalled takes any
// number of jobs without blocking their submitter (the event loop), and
// runs them in order once the disk is back. A queue of 64 blocked the loop
// at its 65th job.
func TestIOWorkersNeverBlockTheLoop(t *testing.T) {
	const jobs = 1000
	w := newIOWorkers()
	w.post = func(f func()) bool { f(); return true }
	stall := make(chan struct{})
	var ran []int // appended by the queue's one goroutine, read after close
	var completed atomic.Int64
	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		for i := range jobs {
			w.submit(7, func() error {
				if i == 0 {
					<-stall
				}
				ran = append(ran, i)
				return nil
			}, func(error) { completed.Add(1) })
		}
	}()
	select {
	case <-submitted:
	case <-time.After(30 * time.Second):
		t.Fatalf("submitting %d jobs behind a stalled one blocked (%d queued)", jobs, w.depth())
	}
	if d := w.depth(); d < jobs-1 {
		t.Fatalf("%d jobs waiting behind the stalled one, want %d", d, jobs-1)
	}
	close(stall)
	w.close()
	if completed.Load() != jobs || len(ran) != jobs {
		t.Fatalf("%d jobs ran, %d completed; want %d", len(ran), completed.Load(), jobs)
	}
	for i, j := range ran {
		if i != j {
			t.Fatalf("job %d ran %dth: a queue runs its jobs in order", j, i)
		}
	}
	if d := w.depth(); d != 0 {
		t.Fatalf("%d jobs waiting after close", d)
	}
}
