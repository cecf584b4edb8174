// Streaming bodies through a demo connection: echoing or discarding request bodies, and generating /bytes and /text.
import HuddleHTTP
import HuddleIO
import HuddleSys

extension DemoConnection {

    func startBody(_ framing: BodyFraming, forward: Bool) {
        bodyForward = forward
        switch framing {
        case .contentLength(let n):
            bodyChunked = false
            bodyRemaining = n
        case .chunked:
            bodyChunked = true
            scanner.reset()
            scannedAhead = 0
            scanFinished = false
        case .none, .untilClose:
            bodyChunked = false
            bodyRemaining = 0
        }
        task = .body
    }

    func produceBody() throws(Errno) -> Step {
        let available: Int
        if bodyChunked {
            if scannedAhead == 0 {
                if scanFinished { return finishBody() }
                if input.isEmpty { return .needInput }
                switch scanner.scan(input.readableBytes) {
                case .consumed(let n):
                    scannedAhead = n
                case .finished(let n):
                    scannedAhead = n
                    scanFinished = true
                case .error:
                    // Mid-body there is no way to answer in order any more.
                    close()
                    return .progress
                }
                if scannedAhead == 0 { return finishBody() }
            }
            available = scannedAhead
        } else {
            if bodyRemaining == 0 { return finishBody() }
            if input.isEmpty { return .needInput }
            available = Int(min(Int64(input.readableCount), bodyRemaining))
        }
        var taken = available
        if bodyForward {
            if !output.isEmpty {
                if !(try output.flush(to: fd)) { return .blocked }
            }
            // Straight from the input buffer to the socket: an echo never holds more than one buffer of body.
            switch try Sys.write(fd, input.readPointer, available) {
            case .wouldBlock:
                return .blocked
            case .done(let n):
                taken = n
            }
        }
        consumeInput(taken)
        if bodyChunked { scannedAhead -= taken } else { bodyRemaining -= Int64(taken) }
        return .progress
    }

    private func finishBody() -> Step {
        task = .idle
        if let route = pendingRoute {
            pendingRoute = nil
            start(route)
        }
        return .progress
    }

    func produceBytes() throws(Errno) -> Step {
        while true {
            if bytesRemaining == 0 && chunkLeft == 0 {
                if bytesChunked { output.append("0\r\n\r\n") }
                task = .idle
                return .progress
            }
            if bytesChunked && chunkLeft == 0 {
                chunkLeft = Int(min(bytesRemaining, 65536))
                output.append(hex: chunkLeft)
                output.append("\r\n")
            }
            if !output.isEmpty {
                if !(try output.flush(to: fd)) { return .blocked }
            }
            let want = bytesChunked ? chunkLeft : Int(min(bytesRemaining, 65536))
            let offset = Int(bytesPosition % bytesPeriod)
            switch try Sys.write(fd, bytesSource + offset, want) {
            case .wouldBlock:
                return .blocked
            case .done(let n):
                bytesPosition += Int64(n)
                bytesRemaining -= Int64(n)
                if bytesChunked {
                    chunkLeft -= n
                    if chunkLeft == 0 { output.append("\r\n") }
                }
            }
        }
    }
}
