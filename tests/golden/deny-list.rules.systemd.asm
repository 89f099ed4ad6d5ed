error: systemd refuses this rule list: `deny c 1:3 w`: systemd has no setting that denies or removes a device (DeviceAllow= only adds)
