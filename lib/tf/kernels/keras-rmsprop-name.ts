// The fused RMSprop kernel's name, apart from the kernel so that lib/model imports no kernel code.

/** Inputs {acc, value, g}, attrs {lr, rho, epsilon}; outputs [new acc, new value]. */
export const KERAS_RMSPROP = 'KerasRMSprop';
