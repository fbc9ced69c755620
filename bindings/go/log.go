package turn

// The log callback's Go side, apart from turn.go: a file with an //export
// may have only declarations in its preamble.

import "C"

import "unsafe"

// goTurnLog is the library's log callback (turn_log_fn, through go_log in
// turn.go): it hands the message to the function of SetLogFunc. A panic
// there stops here: it must not unwind into the library's thread.
//
//export goTurnLog
func goTurnLog(context unsafe.Pointer, level C.int, message *C.char) {
	logMu.RLock()
	f := logFn
	logMu.RUnlock()
	if f == nil {
		return
	}
	defer func() { _ = recover() }()
	f(LogLevel(level), C.GoString(message))
}
