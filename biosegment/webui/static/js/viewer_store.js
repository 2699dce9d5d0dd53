// The viewer page's state in one place: the dataset's shape and classes, the layers, the cursor
// (slice and crosshair), the annotation being edited, the tool, brush and class, the display
// window, the zoom, the models, and the segmentation whose objects are listed. Every panel reads it with get() and changes it only with
// set(patch); the state object itself is frozen, so no panel changes another's data behind its
// back. A panel that shows part of the state subscribes to that part: subscribe(select, listener)
// calls listener(value, state, before) after a set in which select(state) changed (compared with
// Object.is, so select returns the piece itself or a string that sums it up).

export function createStore(initial) {
  let state = Object.freeze({ ...initial });
  const listeners = new Set();

  function notify() {
    for (const listener of [...listeners]) {
      if (!listeners.has(listener)) continue;
      const value = listener.select(state);
      if (Object.is(value, listener.last)) continue;
      const before = listener.last;
      listener.last = value;
      listener.call(value, state, before);
    }
  }

  return {
    get: () => state,
    set(patch) {
      if (Object.keys(patch).every((key) => Object.is(state[key], patch[key]))) return;
      state = Object.freeze({ ...state, ...patch });
      notify();
    },
    subscribe(select, call) {
      const listener = { select, call, last: select(state) };
      listeners.add(listener);
      return () => { listeners.delete(listener); };
    },
  };
}
