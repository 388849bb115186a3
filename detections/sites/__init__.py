"""Sites, visits and occupancy: a site's plate reads turned into visits (one
vehicle's stay, entry to exit), occupancy and dwell times.

    models     sites, their cameras' roles, visits, each site's derivation state
    walk       the rules that make visits of reads (a pure function)
    engine     the follower of the event log that keeps visits up to date
    seen       the plates read at the sites' cameras, in the engine's memory (look-alikes)
    timers     overstay, expiry and capacity, raised by time passing
    queries    occupancy and dwell, from stored visits only
    payloads   the socket and webhook events of visits and sites

Nothing here knows HTTP or sockets: the API, the admin and the feed stand over it.
"""
