"""Panel and board meetings: when they fall (`rules`), and working days around them
(`workdays`, which loads bank-holiday data, so it is imported only where needed)."""
