// A lock-order checker in the spirit of FreeBSD's WITNESS(4), for debug builds.
//
// Model. Every lock belongs to a class (the listen table's writer lock, the
// giant lock, a group lock, a connection lock). A class has a rank: the
// declared order `listen (10) -> giant/group (20) -> connection (30)`. Each
// thread keeps the classes it holds, in acquisition order. On every
// acquisition of class C while the thread holds class H the checker
//
//   * fails if rank(C) < rank(H): the declared order is reversed;
//   * fails if C == H and the class does not allow holding two of its locks
//     (two group locks at once would deadlock against a thread taking them
//     the other way round);
//   * fails if the pair (C before H) was ever seen on any thread: the order
//     learned at run time is reversed (this covers classes of equal rank,
//     such as test classes or future ones);
//   * records the pair (H before C) in a global matrix (a mutex protects it;
//     debug builds only).
//
// A failure calls the handler: by default it prints the message (both
// classes, the order seen before) and aborts; tests install their own to
// observe it. In builds with NDEBUG every call below is an empty inline
// function, so release builds pay nothing.
#pragma once

#include <cstdint>

namespace ngstack::stack::pcb::witness {

#ifndef NDEBUG
inline constexpr bool kEnabled = true;
#else
inline constexpr bool kEnabled = false;
#endif

inline constexpr unsigned kMaxClasses = 32;
inline constexpr unsigned kMaxHeld = 16;  // locks one thread holds at once

using ClassId = uint8_t;

// The classes of stack/pcb, registered at start-up (ranks as above).
struct PcbClasses {
  ClassId listen, giant, group, conn;
};
const PcbClasses& pcb_classes();

// A new class (idempotent by name). `allow_duplicates`: a thread may hold two
// locks of the class (never the case for pcb classes).
ClassId register_class(const char* name, int rank, bool allow_duplicates = false);
const char* class_name(ClassId c);

using Handler = void (*)(const char* message);
// Installs a handler and returns the previous one (nullptr: the default, abort).
Handler set_handler(Handler h);

#ifndef NDEBUG
void on_acquire(ClassId c);  // before the lock is taken: the check is about intent
void on_release(ClassId c);
unsigned held_count();       // this thread
// Forget every learned pair (tests only: their deliberate reversals must not
// leak into the next test).
void reset_learned_order();
#else
inline void on_acquire(ClassId) {}
inline void on_release(ClassId) {}
inline unsigned held_count() { return 0; }
inline void reset_learned_order() {}
#endif

}  // namespace ngstack::stack::pcb::witness
