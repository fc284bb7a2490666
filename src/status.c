/* status: names for hr_status values (for logs and error messages). */
#include "herald/status.h"

const char *hr_status_str(hr_status s)
{
    switch (s) {
    case HR_OK:
        return "ok";
    case HR_ERR_NOMEM:
        return "out of memory";
    case HR_ERR_INVALID:
        return "invalid input";
    case HR_ERR_IO:
        return "I/O error";
    case HR_ERR_NATS:
        return "NATS error";
    case HR_ERR_UNAVAILABLE:
        return "unavailable";
    case HR_ERR_LISTEN:
        return "cannot listen";
    }
    return "unknown error";
}
