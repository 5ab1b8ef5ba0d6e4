//! Classification: the cause taxonomy and its advice, in one table.
