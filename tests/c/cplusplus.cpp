// The generated header compiles as C++ (extern "C" guards) and links.
#include <cstdio>
#include <cstring>

#include "turn.h"

int main() {
    turn_locker *locker = nullptr;
    turn_result rc = turn_locker_new("not a url", &locker);
    if (rc != TURN_ERR_INVALID_ARGUMENT || locker != nullptr) return 1;
    if (std::strlen(turn_last_error()) == 0) return 1;
    std::printf("c++: turn %s, %s\n", turn_version(), turn_result_str(rc));
    return 0;
}
