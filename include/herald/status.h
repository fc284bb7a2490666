/* status: the one error type every fallible herald function returns. */
#ifndef HERALD_STATUS_H
#define HERALD_STATUS_H

typedef enum {
    HR_OK = 0,
    HR_ERR_NOMEM,       /* allocation failed */
    HR_ERR_INVALID,     /* bad argument or input */
    HR_ERR_IO,          /* system call or file failed */
    HR_ERR_NATS,        /* NATS library error */
    HR_ERR_UNAVAILABLE, /* a dependency cannot take the request now */
    HR_ERR_LISTEN,      /* a listener could not be opened */
} hr_status;

const char *hr_status_str(hr_status s);

#endif
