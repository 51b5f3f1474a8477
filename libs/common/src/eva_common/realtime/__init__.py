"""What the realtime service and the gateway's Socket.io share in Redis: room names, the per-tenant sequence with
its replay buffer, and presence. The realtime service writes the sequence and buffer; the gateway reads them to
resume sockets and to deliver each seq-bearing event to each socket once, in order. Both write presence."""
