//! The RPA invoice pipeline: carriers, their clients, monthly invoice
//! processes, the steps run by the outside RPA API, and the schedules that
//! start them.
