error: runc refuses this rule list: unable to remove 'deny' exception: requested rule [{99 10 200} rwm] not supported by devices cgroupv1 (cannot punch hole in existing wildcard rule [{99 10 -1} m])
