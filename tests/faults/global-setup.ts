import { finishFigures, resetFigures } from './figures.js';

/** Starts a fresh figures file before the fault suite and prints the figures after it. */
export default function setup(): () => void {
  resetFigures();
  return () => {
    console.log(finishFigures());
  };
}
